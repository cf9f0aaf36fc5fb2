import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { CHUNK_BYTES, chunkWireBytes } from "../src/transfer/fragment-upload.ts";
import { sampleCamera } from "./support/camera-fixture.ts";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, waitFor } from "./support/tree.ts";

const MiB = 1024 * 1024;
const ms = (iso: string) => Date.parse(iso);
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis));

/** Samples a proxy's upstream byte count every 50 ms, to read the rate over any window afterwards. */
function meter(proxy: TcpProxy) {
  const samples: { at: number; bytes: number }[] = [];
  const take = () => samples.push({ at: performance.now(), bytes: proxy.bytesUpstream });
  take();
  const timer = setInterval(take, 50);
  /** The last sample at or before `at`. */
  const at = (time: number) => samples.findLast((s) => s.at <= time) ?? samples[0]!;
  return {
    /** Bits per second between two instants of performance.now(). */
    rate(from: number, to: number): number {
      const a = at(from);
      const b = at(to);
      return ((b.bytes - a.bytes) * 8 * 1000) / (b.at - a.at);
    },
    stop: () => clearInterval(timer),
  };
}

/** A kz root and a kz.ala child whose link to kz runs through a proxy that counts its bytes. */
async function twoNodeTree(childConfig: Record<string, unknown> = {}) {
  const kz = await initRoot("kz");
  await kz.serve();
  const ala = await joinChild(kz, "kz.ala");
  const configFile = join(ala.dir, "node.json");
  const config = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
  await writeFile(configFile, `${JSON.stringify({ ...config, ...childConfig }, null, 2)}\n`);
  const [host, port] = kz.address.split(":");
  const proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
  await ala.serve(["--parent", proxy.address]);
  await waitFor(() => ala.status(), (s) => s.parent?.state === "connected", 20_000, "kz.ala connected");
  return { kz, ala, proxy, admin: { kz: await connectAdmin(kz.dir), ala: await connectAdmin(ala.dir) } };
}

/** Closes what {@link twoNodeTree} made, as far as it got, and every process and temp dir. */
async function closeTree(tree: Awaited<ReturnType<typeof twoNodeTree>> | undefined): Promise<void> {
  for (const a of Object.values(tree?.admin ?? {})) await a.close();
  await tree?.proxy.close();
  await killAll();
  await removeTempDirs();
}

/** A file of random bytes and its SHA-256. */
async function randomFile(dir: string, name: string, bytes: number): Promise<{ path: string; sha256: string }> {
  const path = join(dir, name);
  const content = randomBytes(bytes);
  await writeFile(path, content);
  return { path, sha256: createHash("sha256").update(content).digest("hex") };
}

const heldAt = async (node: NodeAdmin, id: string) => (await node.listFragments({ site: "" })).fragments.some((f) => f.id === id);

/**
 * Checks the rate the proxy saw against a cap. The limiter lets a whole chunk go at once, so
 * any window may hold up to one chunk more or less than the cap gives (at 8 Mbit/s a chunk
 * is a quarter of a second): the bounds are the cap's bytes over the window, one chunk's
 * wire bytes either way, and beyond that 2 % above (TLS records and control traffic, which
 * the limiter does not count) or `floor` below: a loaded machine may fall short of a high
 * cap (each fragment has one chunk in flight, waiting for the parent's fsync), but must
 * never exceed it.
 */
function expectRate(bitsPerSecond: number, capBits: number, seconds: number, floor: number): void {
  const bytes = (bitsPerSecond * seconds) / 8;
  const capBytes = (capBits * seconds) / 8;
  const chunk = chunkWireBytes(0, CHUNK_BYTES);
  expect(bytes).toBeGreaterThan(capBytes * floor - chunk);
  expect(bytes).toBeLessThan(capBytes * 1.02 + chunk);
}

const mbit = (bitsPerSecond: number) => `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;

describe("fragment flow: a cap change on a running transfer (R-6.19)", () => {
  let tree: Awaited<ReturnType<typeof twoNodeTree>>;
  let files: string;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-flow-files-");
    // The child's own cap, above what the parent sets first and below what it sets last.
    tree = await twoNodeTree({ bandwidth: "64Mbit" });
  }, 90_000);

  afterAll(() => closeTree(tree));

  it("fragments flow - lowering the parent's cap slows running transfers within a second; a lower config cap wins over the parent's (R-6.19)", async () => {
    const { admin, proxy } = tree;
    expect(await admin.ala.listTransfers({})).toMatchObject({ cap_bits_per_second: 64_000_000, cap_source: "config" });
    await admin.kz.setLinkLimit({ site: "kz.ala", bits_per_second: 40_000_000 });
    await waitFor(() => admin.ala.listTransfers({}), (t) => t.cap_bits_per_second === 40_000_000 && t.cap_source === "parent", 5_000, "the 40 Mbit/s cap at kz.ala");

    // Two fragments at once, so that the cap and not one fragment's round trips sets the pace.
    const file = await randomFile(files, "large.bin", 48 * MiB);
    const ids: string[] = [];
    for (const camera of ["ala-cam-001", "ala-cam-002"]) {
      const { fragment } = await admin.ala.addFragment({ camera_id: camera, file_path: file.path, start_ms: ms("2026-11-20T08:00:00Z"), end_ms: ms("2026-11-20T08:10:00Z"), incident: true });
      ids.push(fragment!.id);
    }
    const running = (t: Awaited<ReturnType<NodeAdmin["listTransfers"]>>) => t.transfers.filter((x) => ids.includes(x.fragment_id) && x.state === "sending" && x.bytes_done > 1 * MiB);
    await waitFor(() => admin.ala.listTransfers({}), (t) => running(t).length === 2, 20_000, "both transfers under way");
    const bytes = meter(proxy);
    try {
      await sleep(3_200);
      const start = performance.now();
      const at40 = bytes.rate(start - 3_000, start);

      await admin.kz.setLinkLimit({ site: "kz.ala", bits_per_second: 8_000_000 });
      const lowered = performance.now();
      const seen = await waitFor(() => admin.ala.listTransfers({}), (t) => t.cap_bits_per_second === 8_000_000, 5_000, "the 8 Mbit/s cap at kz.ala");
      const appliedMs = performance.now() - lowered;
      expect(seen).toMatchObject({ cap_bits_per_second: 8_000_000, cap_source: "parent" });
      expect(running(seen)).toHaveLength(2);
      await sleep(4_200);
      // From one second after the change on, the wire runs at the new cap.
      const at8 = bytes.rate(lowered + 1_000, lowered + 4_000);

      // The parent now allows more than the child's own 64 Mbit/s: the lowest cap applies.
      await admin.kz.setLinkLimit({ site: "kz.ala", bits_per_second: 100_000_000 });
      const raised = performance.now();
      const config = await waitFor(() => admin.ala.listTransfers({}), (t) => t.cap_bits_per_second === 64_000_000, 5_000, "the config cap at kz.ala");
      expect(config).toMatchObject({ cap_bits_per_second: 64_000_000, cap_source: "config" });
      await sleep(2_200);
      const at64 = bytes.rate(raised + 1_000, raised + 2_000);

      console.log(
        `cap change: at 40 Mbit/s measured ${mbit(at40)} over 3 s; lowered to 8 Mbit/s, the child applied it after ${appliedMs.toFixed(0)} ms ` +
          `and from 1 s to 4 s after the change the wire ran at ${mbit(at8)}; with the parent at 100 Mbit/s the config's 64 Mbit/s applied: ${mbit(at64)} over 1 s`,
      );
      expect(appliedMs).toBeLessThan(1_000);
      expectRate(at40, 40e6, 3, 0.8);
      expectRate(at8, 8e6, 3, 0.9);
      expectRate(at64, 64e6, 1, 0.75);
    } finally {
      bytes.stop();
    }

    // Whatever the caps did on the way, the fragments arrive whole.
    for (const [index, id] of ids.entries()) {
      await waitFor(() => heldAt(admin.kz, id), (held) => held, 60_000, `fragment ${id} at kz`);
      const out = join(files, `large-out-${index}.bin`);
      await admin.kz.exportFragment({ id, out_path: out });
      expect(createHash("sha256").update(await readFile(out)).digest("hex")).toBe(file.sha256);
    }
  }, 120_000);
});

describe("fragment flow: control traffic beside a saturating transfer (R-7.1)", () => {
  let tree: Awaited<ReturnType<typeof twoNodeTree>>;
  let files: string;
  let cameras = 0;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-flow-files-");
    tree = await twoNodeTree();
  }, 90_000);

  afterAll(() => closeTree(tree));

  /** Milliseconds from a camera import at kz.ala until kz lists the camera. */
  async function importLatency(): Promise<number> {
    const { admin } = tree;
    cameras += 1;
    const cameraId = `ala-cam-${String(cameras).padStart(3, "0")}`;
    const content = Buffer.from(JSON.stringify(Array.from({ length: cameras }, (_, i) => sampleCamera(`ala-cam-${String(i + 1).padStart(3, "0")}`))));
    const started = performance.now();
    await admin.ala.importCameras({ file_name: "cameras.json", content });
    for (;;) {
      const { cameras: listed } = await admin.kz.listCameras({ site: "kz.ala" });
      if (listed.some((c) => c.camera?.camera_id === cameraId)) return performance.now() - started;
      if (performance.now() - started > 30_000) throw new Error(`camera ${cameraId} did not reach kz within 30 s`);
      await sleep(10);
    }
  }

  /** Milliseconds from a policy apply at kz until kz.ala holds that version. */
  async function policyLatency(version: number): Promise<number> {
    const { admin } = tree;
    const policy = `roles:\n  viewer: [view_live]\nbindings:\n  - id: b${version}\n    subject: user:u${version}\n    role: viewer\n    scope: kz.ala\n    effect: allow\n`;
    const started = performance.now();
    await admin.kz.applyPolicy({ file_name: "kz.yaml", content: Buffer.from(policy) });
    for (;;) {
      const shown = await admin.ala.showPolicy({});
      if (JSON.stringify(shown).includes(`"b${version}"`)) return performance.now() - started;
      if (performance.now() - started > 30_000) throw new Error(`policy version ${version} did not reach kz.ala within 30 s`);
      await sleep(10);
    }
  }

  it("fragments flow - imports and policies cross the link as fast beside four saturating uploads as on the idle link (R-7.1)", async () => {
    const { admin, proxy } = tree;
    const idle = { imports: [] as number[], policies: [] as number[] };
    for (let i = 0; i < 3; i++) {
      idle.imports.push(await importLatency());
      idle.policies.push(await policyLatency(i + 1));
    }

    const file = await randomFile(files, "saturating.bin", 64 * MiB);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { fragment } = await admin.ala.addFragment({ camera_id: `ala-rec-${i}`, file_path: file.path, start_ms: ms("2026-11-20T08:00:00Z"), end_ms: ms("2026-11-20T08:10:00Z"), incident: true });
      ids.push(fragment!.id);
    }
    await waitFor(() => admin.ala.listTransfers({}), (t) => t.transfers.filter((x) => x.state === "sending" && x.bytes_done > 0).length === 4, 20_000, "four uploads under way");
    const bytes = meter(proxy);
    const loaded = { imports: [] as number[], policies: [] as number[] };
    let window: { from: number; to: number };
    try {
      const from = performance.now();
      for (let i = 0; i < 3; i++) {
        loaded.imports.push(await importLatency());
        loaded.policies.push(await policyLatency(i + 4));
      }
      window = { from, to: performance.now() };
      // The uploads were still running throughout: the measurements were made beside them.
      const still = await admin.ala.listTransfers({});
      expect(still.transfers.filter((x) => x.state === "sending").length).toBeGreaterThan(0);
    } finally {
      bytes.stop();
    }
    const rate = bytes.rate(window.from, window.to);
    const format = (values: number[]) => values.map((v) => v.toFixed(0)).join(", ");
    console.log(
      `control latency (ms): idle imports ${format(idle.imports)}, policies ${format(idle.policies)}; ` +
        `beside 4 uploads at ${(rate / 1e6).toFixed(0)} Mbit/s: imports ${format(loaded.imports)}, policies ${format(loaded.policies)}`,
    );
    for (const latency of [...loaded.imports, ...loaded.policies]) expect(latency).toBeLessThan(2_000);
    // The uploads really filled the link meanwhile (the sync traffic is a few kbit/s)...
    expect(rate).toBeGreaterThan(40e6);
    // ...over a connection of their own beside the control streams' (R-7.1: separate traffic classes).
    expect(proxy.connections).toBe(2);
    for (const id of ids) await waitFor(() => heldAt(admin.kz, id), (held) => held, 90_000, `fragment ${id} at kz`);
  }, 180_000);
});

describe("fragment flow: the running node applies retention (R-13)", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("fragments flow - a served node deletes and audits a recording past its 30 days, and keeps a recent one and an old incident", async () => {
    const kz = await initRoot("kz");
    const files = await makeTempDir("vmtree-flow-files-");
    const old = await randomFile(files, "old.bin", 4096);
    const recent = await randomFile(files, "recent.bin", 4096);
    const day = 86_400_000;
    const now = Date.now();
    // Registered while the node is stopped: the admin API opens the store directly.
    const offline = await connectAdmin(kz.dir);
    const expired = (await offline.addFragment({ camera_id: "kz-cam-001", file_path: old.path, start_ms: now - 31 * day - 60_000, end_ms: now - 31 * day, incident: false })).fragment!;
    const incident = (await offline.addFragment({ camera_id: "kz-cam-002", file_path: old.path, start_ms: now - 31 * day - 60_000, end_ms: now - 31 * day, incident: true })).fragment!;
    const kept = (await offline.addFragment({ camera_id: "kz-cam-003", file_path: recent.path, start_ms: now - 29 * day - 60_000, end_ms: now - 29 * day, incident: false })).fragment!;
    await offline.close();

    await kz.serve();
    const admin = await connectAdmin(kz.dir);
    try {
      const listing = await waitFor(() => admin.listFragments({ site: "" }), (l) => l.fragments.length === 2, 20_000, "the sweep at start");
      expect(listing.fragments.map((f) => f.id).sort()).toEqual([incident.id, kept.id].sort());
      const entries = await kz.auditList(["--action", "fragment.expire"]);
      expect(entries.map(({ actor, action, target, result, details }) => ({ actor, action, target, result, details }))).toEqual([
        { actor: "node", action: "fragment.expire", target: expired.id, result: "ok", details: { site: "kz", camera: "kz-cam-001", end_ms: expired.end_ms, incident: false, retention_days: 30 } },
      ]);
    } finally {
      await admin.close();
    }
    await kz.stop();
  }, 60_000);
});
