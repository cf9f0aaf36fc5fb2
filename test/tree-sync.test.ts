import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, perSite, waitFor, type TestNode } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/inventory/", import.meta.url).pathname;
const METRO = join(EXAMPLES, "kz.ala.metro-01.csv");

// One three-level tree for the whole file: kz ← kz.ala ← (proxy) ← kz.ala.metro-01.
describe("inventory sync through a three-level tree", () => {
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;
  let proxy: TcpProxy;

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    const [host, port] = ala.address.split(":");
    proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    await metro.serve(["--parent", proxy.address]);
  });

  afterAll(async () => {
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  it("tree sync - a site's import reaches the root with its origin and without credentials", async () => {
    expect(await metro.import(METRO)).toContain("40 added, 0 changed, 0 removed, 0 unchanged");
    const national = await waitFor(() => kz.cameras(), (c) => c.length === 40, 20_000, "40 cameras at kz");
    expect(perSite(national)).toEqual({ "kz.ala.metro-01": 40 });
    // the stream credentials stay at the site, also the malformed `S3rv;ce#2020` password.
    const cam002 = national.find((c) => c.camera_id === "metro-01-cam-002");
    expect(cam002?.stream_url).toBe("rtsp://10.28.192.80:554/Streaming/Channels/101");
    expect(national.filter((c) => c.stream_url.includes("@"))).toEqual([]);
    expect(national.filter((c) => /Qwerty|v1ewer|S3rv/.test(c.stream_url))).toEqual([]);
    // The region holds the same replica.
    expect((await ala.cameras()).length).toBe(40);
    // Every field of the input travels; the site's own list agrees with the root's.
    const own = await metro.cameras();
    expect(national).toEqual(own);
    expect(Object.keys(national[0]!).sort()).toEqual(
      [
        "address", "bitrate_kbps", "camera_id", "camera_type", "codec", "firmware", "fps", "height", "installed_at",
        "ir_range_m", "latitude", "longitude", "model", "mount_height_m", "name", "object_class", "protocol", "site",
        "status", "stream_url", "vendor", "width",
      ].sort(),
    );
  });

  it("tree sync - a re-import updates, adds and deletes (tombstones) up to the root", async () => {
    const changed = (await readFile(METRO, "utf8"))
      .replace("metro-01-cam-003,Платформа 3,crowded,indoor_entry,Dahua,IPC-HFW5442E-ZE,V2.820.0,onvif,", "metro-01-cam-003,Платформа 3 (жаңа),crowded,indoor_entry,Dahua,IPC-HFW5442E-ZE,V2.820.0,onvif,")
      .split("\n")
      .filter((line) => !line.startsWith("metro-01-cam-040,"))
      .join("\n")
      .concat("metro-01-cam-041,Жаңа камера,crowded,indoor_overview,Axis,P1455-LE,10.12.199,onvif,rtsp://u:p@10.1.2.3:554/s,H.265,1920,1080,25,6144,30,3.0,43.2,76.9,\"Абай даңғылы, 1\",2026-11-30,online\n");
    const file = join(metro.dir, "..", "metro-v2.csv");
    await writeFile(file, changed);
    expect(await metro.import(file)).toContain("1 added, 1 changed, 1 removed, 38 unchanged");
    const national = await waitFor(
      () => kz.cameras("kz.ala.metro-01"),
      (c) => c.some((x) => x.camera_id === "metro-01-cam-041") && !c.some((x) => x.camera_id === "metro-01-cam-040"),
      20_000,
      "the re-import at kz",
    );
    expect(national.length).toBe(40);
    expect(national.find((c) => c.camera_id === "metro-01-cam-003")?.name).toBe("Платформа 3 (жаңа)");
    expect(national.find((c) => c.camera_id === "metro-01-cam-041")?.stream_url).toBe("rtsp://10.1.2.3:554/s");
    // Restore the original for the next test.
    expect(await metro.import(METRO)).toContain("1 added, 1 changed, 1 removed, 38 unchanged");
    await waitFor(() => kz.cameras(), (c) => c.some((x) => x.camera_id === "metro-01-cam-040") && c.length === 40, 20_000, "restore");
  });

  it("tree sync - with the link down the site works alone, and on return sends only what is new", async () => {
    const before = await waitFor(() => metro.status(), (s) => s.parent?.state === "connected" && s.parent.pending === 0, 20_000, "idle link");
    const sentBefore = before.parent!.sent;
    const receivedBefore = (await ala.status()).children.find((c) => c.site === "kz.ala.metro-01")!.received;

    proxy.pause();
    await waitFor(() => metro.status(), (s) => s.parent?.state !== "connected", 20_000, "link down");
    // Autonomy: imports and lists work while the parent is unreachable.
    const changed = (await readFile(METRO, "utf8")).replaceAll(",online\n", ",offline\n").replace(/^metro-01-cam-00[1-9].*offline$/gm, (l) => l.replace(/offline$/, "online"));
    const file = join(metro.dir, "..", "metro-offline.csv");
    await writeFile(file, changed);
    const summary = await metro.import(file);
    const changedCount = Number(/(\d+) changed/.exec(summary)![1]);
    expect(changedCount).toBeGreaterThan(0);
    expect((await metro.cameras()).filter((c) => c.status === "offline").length).toBe(40 - 9);
    const offline = await metro.status();
    expect(offline.parent).toMatchObject({ site: "kz.ala", pending: changedCount });
    expect(offline.parent!.state).not.toBe("connected");
    expect(offline.parent!.since).not.toBeNull();

    proxy.resume();
    const after = await waitFor(() => metro.status(), (s) => s.parent?.state === "connected" && s.parent.pending === 0, 30_000, "catch-up");
    // Only the changes after the last acknowledged checkpoint crossed the link.
    expect(after.parent!.sent - sentBefore).toBe(changedCount);
    const region = await waitFor(
      () => ala.status(),
      (s) => s.children.find((c) => c.site === "kz.ala.metro-01")!.received - receivedBefore === changedCount,
      10_000,
      "the region to count the changes",
    );
    expect(region.children.find((c) => c.site === "kz.ala.metro-01")!.state).toBe("connected");
    const national = await waitFor(() => kz.cameras(), (c) => c.filter((x) => x.status === "offline").length === 31, 20_000, "root converges");
    expect(national).toEqual(await metro.cameras());
  });

  it("status - shows the parent link, children with their link state, and camera counts", async () => {
    const status = await ala.status();
    expect(status).toMatchObject({
      site: "kz.ala",
      epoch: 1,
      running: true,
      root: false,
      parent: { site: "kz", state: "connected", pending: 0, lastError: null },
      children: [{ site: "kz.ala.metro-01", epoch: 1, state: "connected", pending: 0 }],
      cameras: { own: 0, subtree: 40 },
    });
    const root = await kz.status();
    expect(root).toMatchObject({ site: "kz", root: true, parent: null, children: [{ site: "kz.ala", state: "connected" }] });
  });

  // Runs last: it stops kz.ala.
  it("serve - SIGTERM ends children's sessions without recording them as refused; a stopped node keeps its link times", async () => {
    const connected = (await ala.status()).children[0]!;
    await ala.stop();
    expect(await ala.auditList(["--action", "call.refused"])).toEqual([]);
    expect((await ala.auditList(["--action", "node.stop"])).map((e) => e.result)).toEqual(["ok"]);
    const stopped = await ala.status();
    expect(stopped.running).toBe(false);
    expect(stopped.children).toEqual([
      expect.objectContaining({ site: "kz.ala.metro-01", state: "disconnected", lastSync: connected.lastSync }),
    ]);
    expect(Date.parse(stopped.children[0]!.since!)).toBeGreaterThanOrEqual(Date.parse(connected.since!));
  });
});
