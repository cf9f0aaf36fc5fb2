import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { CHUNK_BYTES } from "../src/transfer/fragment-upload.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, waitFor, type TestNode } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/fragments/", import.meta.url).pathname;
const H264 = join(EXAMPLES, "cam-ala-001_20261120T081500Z.mp4");
const MJPEG = join(EXAMPLES, "cam-ast-003_20261121T220000Z.avi");
const ms = (iso: string) => Date.parse(iso);

// kz ← kz.ala ← kz.ala.metro-01, the metro's link through a proxy the tests cut.
describe("video fragments", () => {
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;
  let proxy: TcpProxy;
  let admin: { kz: NodeAdmin; ala: NodeAdmin; metro: NodeAdmin };
  let files: string;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-fragment-files-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    const [host, port] = ala.address.split(":");
    proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    await metro.serve(["--parent", proxy.address]);
    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected", 20_000, "the metro connected");
    admin = { kz: await connectAdmin(kz.dir), ala: await connectAdmin(ala.dir), metro: await connectAdmin(metro.dir) };
  }, 90_000);

  afterAll(async () => {
    for (const a of Object.values(admin ?? {})) await a.close();
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  const heldAt = async (node: NodeAdmin, id: string) => (await node.listFragments({ site: "" })).fragments.some((f) => f.id === id);

  it("fragments - a request at kz brings a metro recording up hop by hop, byte-identical, and the request is recorded as delivered (R-28)", async () => {
    const added = await admin.metro.addFragment({ camera_id: "metro-01-cam-001", file_path: H264, start_ms: ms("2026-11-20T08:15:00Z"), end_ms: ms("2026-11-20T08:15:04Z"), incident: false });
    expect(added.fragment).toMatchObject({ site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", size: 2_576_671, sha256: "d533fcc62f34c1e43c243f7328871c1dbad55dd1747a8239723eb04dfe5db78d", incident: false, file_name: "cam-ala-001_20261120T081500Z.mp4" });
    const { request } = await admin.kz.requestFragments({ site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", from_ms: ms("2026-11-20T08:00:00Z"), to_ms: ms("2026-11-20T09:00:00Z"), reason: "incident report 17/2026", requested_by: "user:ivanov" });
    expect(request?.id).toBe("kz/1");
    const id = added.fragment!.id;
    await waitFor(() => heldAt(admin.kz, id), (held) => held, 30_000, "the fragment at kz");
    expect(await heldAt(admin.ala, id)).toBe(true);
    const out = join(files, "exported.mp4");
    await admin.kz.exportFragment({ id, out_path: out });
    expect((await readFile(out)).equals(await readFile(H264))).toBe(true);
    const states = await waitFor(() => admin.kz.listFragmentRequests({}), (r) => r.requests[0]?.state === "delivered", 10_000, "the request delivered");
    expect(states.requests[0]).toMatchObject({ state: "delivered", delivered: 1, outcome: { state: "found", request_id: "kz/1" } });
  }, 60_000);

  it("fragments - a request for a recording that does not exist is answered not_found", async () => {
    await admin.kz.requestFragments({ site: "kz.ala.metro-01", camera_id: "metro-01-cam-999", from_ms: ms("2026-11-20T08:00:00Z"), to_ms: ms("2026-11-20T09:00:00Z"), reason: "check", requested_by: "user:ivanov" });
    const states = await waitFor(() => admin.kz.listFragmentRequests({}), (r) => r.requests.find((x) => x.request?.id === "kz/2")?.state === "not_found", 15_000, "the answer");
    expect(states.requests.find((x) => x.request?.id === "kz/2")?.outcome?.message).toBe("no recording of camera metro-01-cam-999 at kz.ala.metro-01 between 2026-11-20T08:00:00.000Z and 2026-11-20T09:00:00.000Z");
  }, 30_000);

  it("fragments - an incident recording goes up to the root without a request (R-6.7)", async () => {
    const added = await admin.metro.addFragment({ camera_id: "metro-01-cam-003", file_path: MJPEG, start_ms: ms("2026-11-21T22:00:00Z"), end_ms: ms("2026-11-21T22:00:03Z"), incident: true });
    await waitFor(() => heldAt(admin.kz, added.fragment!.id), (held) => held, 30_000, "the incident fragment at kz");
  }, 40_000);

  it("fragments - ids and paths that try to leave the archive are refused with INVALID_ARGUMENT", async () => {
    for (const id of ["../../etc/passwd", "f-../x", "/etc/passwd", ".."]) {
      await expect(admin.kz.exportFragment({ id, out_path: join(files, "x") })).rejects.toMatchObject({ code: "invalid_argument" });
    }
    await expect(admin.metro.addFragment({ camera_id: "c1", file_path: "relative/file.mp4", start_ms: 1, end_ms: 2, incident: false })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(admin.metro.addFragment({ camera_id: "../c1", file_path: H264, start_ms: 1, end_ms: 2, incident: false })).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("fragments - after the link is cut mid-transfer the upload resumes from the parent's offset, at most one chunk sent again", async () => {
    const big = join(files, "big.bin");
    const content = randomBytes(6 * 1024 * 1024);
    await writeFile(big, content);
    // 16 Mbit/s: 6 MiB take about 3 s, time enough to cut the link in the middle.
    await admin.ala.setLinkLimit({ site: "kz.ala.metro-01", bits_per_second: 16_000_000 });
    await waitFor(() => admin.metro.listTransfers({}), (t) => t.cap_bits_per_second === 16_000_000 && t.cap_source === "parent", 5_000, "the cap applied at the metro");
    const added = await admin.metro.addFragment({ camera_id: "metro-01-cam-007", file_path: big, start_ms: ms("2026-11-22T10:00:00Z"), end_ms: ms("2026-11-22T10:05:00Z"), incident: false });
    await admin.kz.requestFragments({ site: "kz.ala.metro-01", camera_id: "metro-01-cam-007", from_ms: ms("2026-11-22T10:00:00Z"), to_ms: ms("2026-11-22T10:01:00Z"), reason: "resume test", requested_by: "user:ivanov" });
    const id = added.fragment!.id;
    await waitFor(() => admin.metro.listTransfers({}), (t) => (t.transfers.find((x) => x.fragment_id === id)?.bytes_done ?? 0) > 2 * 1024 * 1024, 15_000, "a third sent");
    proxy.cut();
    await waitFor(() => heldAt(admin.ala, id), (held) => held, 30_000, "the fragment at kz.ala after the cut");
    // kz.ala holds the fragment a moment before its answer reaches the metro, which then marks the job done.
    const done = await waitFor(() => admin.metro.listTransfers({}), (t) => t.transfers.some((x) => x.fragment_id === id && x.state === "done"), 10_000, "the job done at the metro");
    const sent = done.transfers.find((x) => x.fragment_id === id && x.state === "done");
    expect(sent?.attempts).toBe(2);
    expect(sent?.resent).toBeLessThanOrEqual(CHUNK_BYTES);
    expect(sent?.last_error).toBe("");
    await waitFor(() => heldAt(admin.kz, id), (held) => held, 30_000, "the fragment at kz");
    const out = join(files, "big-out.bin");
    await admin.kz.exportFragment({ id, out_path: out });
    expect((await readFile(out)).equals(content)).toBe(true);
    await admin.ala.setLinkLimit({ site: "kz.ala.metro-01", bits_per_second: 0 });
  }, 60_000);

  it("fragments - a recording damaged in the site's archive fails for good there, and the requester two hops up learns it as failed, with why", async () => {
    const source = join(files, "rewritten.bin");
    const content = randomBytes(600 * 1024);
    await writeFile(source, content);
    const added = await admin.metro.addFragment({ camera_id: "metro-01-cam-009", file_path: source, start_ms: ms("2026-11-23T10:00:00Z"), end_ms: ms("2026-11-23T10:01:00Z"), incident: false });
    const id = added.fragment!.id;
    // The recorder rewrites its file in place after registering it: the archive's hard link shares the change.
    const damaged = Buffer.from(content);
    damaged[1000] = damaged[1000]! ^ 0xff;
    await writeFile(source, damaged);
    const { request } = await admin.kz.requestFragments({ site: "kz.ala.metro-01", camera_id: "metro-01-cam-009", from_ms: ms("2026-11-23T10:00:00Z"), to_ms: ms("2026-11-23T10:01:00Z"), reason: "damage test", requested_by: "user:ivanov" });
    const state = await waitFor(() => admin.kz.listFragmentRequests({}), (r) => r.requests.find((x) => x.request?.id === request!.id)?.state === "failed", 30_000, "the request failed at kz");
    const sha256 = createHash("sha256").update(damaged).digest("hex");
    expect(state.requests.find((x) => x.request?.id === request!.id)).toMatchObject({
      state: "failed",
      delivered: 0,
      failures: [{ request_id: request!.id, fragment_id: id, message: `kz.ala.metro-01 cannot send it: fragment ${id} is damaged here: its file's SHA-256 is ${sha256}, not the ${added.fragment!.sha256} recorded when it was registered` }],
    });
    expect((await admin.metro.listTransfers({})).transfers.find((t) => t.fragment_id === id)).toMatchObject({ state: "failed", attempts: 1 });
    expect(await heldAt(admin.kz, id)).toBe(false);
  }, 60_000);

  it("fragments - a cap on a child that is not a direct child is refused", async () => {
    await expect(admin.kz.setLinkLimit({ site: "kz.ala.metro-01", bits_per_second: 1_000_000 })).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
