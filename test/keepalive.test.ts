import { afterAll, describe, expect, it } from "vitest";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, waitFor } from "./support/tree.ts";

describe("keepalive", () => {
  let proxy: TcpProxy | undefined;
  afterAll(async () => {
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  it("links - both ends notice a silently dead peer within 30 s and recover when it returns", { timeout: 90_000 }, async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const ala = await joinChild(kz, "kz.ala");
    const [host, port] = kz.address.split(":");
    proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    await ala.serve(["--parent", proxy.address]);
    await waitFor(() => ala.status(), (s) => s.parent?.state === "connected", 20_000, "link up");

    // No FIN, no RST: bytes just stop arriving, as when a route or a peer dies.
    proxy.blackhole();
    const cutAt = Date.now();
    const child = await waitFor(() => ala.status(), (s) => s.parent?.state !== "connected", 30_000, "the child to notice");
    const parent = await waitFor(() => kz.status(), (s) => s.children[0]?.state === "disconnected", 30_000 - (Date.now() - cutAt), "the parent to notice");
    expect(Date.now() - cutAt).toBeLessThan(30_000);
    expect(child.parent!.lastError).not.toBeNull();
    expect(parent.children[0]!.since).not.toBeNull();

    proxy.resume();
    await waitFor(() => ala.status(), (s) => s.parent?.state === "connected", 30_000, "the link to come back");
  });
});
