import { afterEach, describe, expect, it } from "vitest";
import { connectAdmin } from "../src/node/admin-client.ts";
import { appendBacklog } from "./support/audit-backlog.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, waitFor, type TestNode } from "./support/tree.ts";

const BURST = 300;
// Large and slow enough (with the proxy's delay) that a kill lands while it is shipping.
const BACKLOG = 100_000;

/** Records `count` actions through the running site's admin socket, as its video system would. */
async function recordBurst(site: TestNode, count: number): Promise<void> {
  const admin = await connectAdmin(site.dir, "user:test");
  try {
    for (let i = 0; i < count; i++) {
      await admin.recordAudit({ actor: "user:operator", action: "vms.view_archive", target: `burst-${i}`, result: "ok", details: "" });
    }
  } finally {
    await admin.close();
  }
}

/**
 * Waits until `holder` holds all of `site`'s own log as it stands now, and asserts that it
 * holds it unchanged and that the chain verifies there. Reading the site's log is itself an
 * audited action (`audit.list`, R-6.4) recorded right after what the read returns, so the
 * holder must reach one entry past it; no wait can make the two logs equal while reads add to one.
 */
async function expectCaughtUp(holder: TestNode, site: TestNode, timeoutMs: number): Promise<void> {
  const all = ["--site", site.site, "--limit", "1000000"];
  const own = await site.auditList(all);
  const target = own.length + 1;
  const chain = await waitFor(
    async () => (await holder.auditVerify(site.site)).chains.find((c) => c.origin === site.site),
    (held) => (held?.lastSeq ?? 0) >= target,
    timeoutMs,
    `${site.site}'s chain at ${holder.site}`,
  );
  expect(chain).toMatchObject({ firstSeq: 1, entries: chain!.lastSeq, ok: true, badSeq: null, reason: null, quarantined: null });
  const held = await holder.auditList(all);
  // Relayed unchanged, each entry once, in the site's order.
  expect(held.slice(0, own.length)).toEqual(own);
  // The read's own record, or a link event the site recorded in between, continues the chain.
  expect(held[own.length]).toMatchObject({ origin: site.site, seq: target, prevHash: own.at(-1)!.hash });
}

/** Reads `read` until it returns the same value twice, `intervalMs` apart: in-flight batches have landed. */
async function settled(read: () => Promise<number>, intervalMs = 1_000): Promise<number> {
  let last = await read();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const now = await read();
    if (now === last) return now;
    last = now;
  }
}

describe("audit shipping (R-6.4)", () => {
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await killAll();
    await removeTempDirs();
  });

  it("audit - a burst recorded while a site is cut off reaches the root exactly once, in order", async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    const metro = await joinChild(ala, "kz.ala.metro-01");
    const [host, port] = ala.address.split(":");
    const proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    proxies.push(proxy);
    await metro.serve(["--parent", proxy.address]);
    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected", 20_000, "metro connected");

    proxy.pause();
    await waitFor(() => metro.status(), (s) => s.parent?.state === "disconnected", 20_000, "metro cut off");
    await recordBurst(metro, BURST);
    expect((await metro.status()).parent!.auditPending).toBeGreaterThanOrEqual(BURST);
    proxy.resume();

    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected" && s.parent.auditPending === 0, 30_000, "metro caught up");
    const own = await metro.auditList(["--site", metro.site]);
    const head = own.at(-1)!.seq;
    expect(own.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect(own.filter((e) => e.action === "vms.view_archive").map((e) => e.target)).toEqual(
      Array.from({ length: BURST }, (_, i) => `burst-${i}`),
    );

    for (const holder of [ala, kz]) await expectCaughtUp(holder, metro, 30_000);
    expect((await kz.status()).audit.quarantined).toEqual([]);
  }, 120_000);

  describe("kill -9 mid-shipment loses nothing", () => {
    /** A site holding a large backlog, shipping it through a slow link so that it can be interrupted. */
    async function shippingPair(): Promise<{ kz: TestNode; ast: TestNode; proxy: TcpProxy }> {
      const kz = await initRoot("kz");
      await kz.serve();
      const ast = await joinChild(kz, "kz.ast");
      await appendBacklog(ast.dir, ast.site, 1, BACKLOG);
      const [host, port] = kz.address.split(":");
      const proxy = await startTcpProxy({ target: { host: host!, port: Number(port) }, delayMs: 300 });
      proxies.push(proxy);
      await ast.serve(["--parent", proxy.address]);
      return { kz, ast, proxy };
    }

    /** Cheap to poll: the parent's count of entries stored from ast since it started. */
    const receivedAt = async (kz: TestNode) => (await kz.status()).children.find((c) => c.site === "kz.ast")?.auditReceived ?? 0;
    const heldAt = async (kz: TestNode, origin: string) => (await kz.auditVerify(origin)).chains.find((c) => c.origin === origin)?.lastSeq ?? 0;

    it("audit - kill -9 of the sending site mid-shipment: it resumes from the parent's checkpoint", async () => {
      const { kz, ast, proxy } = await shippingPair();
      await waitFor(() => receivedAt(kz), (n) => n > 0, 30_000, "the first entries at kz");
      await ast.kill9();
      const held = await settled(() => heldAt(kz, ast.site));
      expect(held).toBeLessThan(BACKLOG);

      await ast.serve(["--parent", proxy.address]);
      await expectCaughtUp(kz, ast, 60_000);
      // Nothing is recorded on ast now until the next read, so what kz holds stops moving;
      // ast's count of acknowledged entries is taken before its status read is recorded.
      const caughtUp = await settled(() => heldAt(kz, ast.site));
      // Only what kz lacked was sent again.
      expect((await ast.status()).parent!.auditSent).toBe(caughtUp - held);
      expect((await kz.status()).audit.quarantined).toEqual([]);
    }, 120_000);

    it("audit - kill -9 of the receiving parent mid-shipment: what it acknowledged survives and the rest follows", async () => {
      const { kz, ast } = await shippingPair();
      await waitFor(() => receivedAt(kz), (n) => n > 0, 30_000, "the first entries at kz");
      await kz.kill9();
      const held = await heldAt(kz, ast.site);
      expect(held).toBeLessThan(BACKLOG);
      await kz.serve();

      await expectCaughtUp(kz, ast, 60_000);
      expect((await kz.auditVerify()).code).toBe(0);
      expect((await kz.status()).audit.quarantined).toEqual([]);
    }, 120_000);
  });
});
