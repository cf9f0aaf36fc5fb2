import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.ts";
import { killAll, makeTempDir, removeTempDirs, runCli, spawnNode } from "./support/processes.ts";
import { initRoot, joinChild, ok, waitFor, type TestNode } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/fragments/", import.meta.url).pathname;
const H264 = "cam-ala-001_20261120T081500Z.mp4";
const H264_BYTES = 2_576_671;
const H264_SHA256 = "d533fcc62f34c1e43c243f7328871c1dbad55dd1747a8239723eb04dfe5db78d";
const USAGE = "Run `vmtree --help` for usage.\n";

interface FragmentJson {
  id: string; site: string; camera_id: string; start: string; end: string; size: number; sha256: string; incident: boolean; file_name: string; added_at: string;
}
interface TransferJson {
  fragment_id: string; peer: string; direction: string; priority: string; state: string; bytes_done: number; bytes_total: number;
  rate_bits_per_second: number; eta_ms: number | null; resent_bytes: number; attempts: number; last_error: string | null;
}
interface TransfersJson { at: string; cap_bits_per_second: number | null; cap_source: string; transfers: TransferJson[] }
interface RequestStateJson {
  id: string; site: string; camera_id: string; from: string; to: string; reason: string; requested_by: string; requester: string; requested_at: string;
  state: string; delivered: number; outcome: null | { state: string; fragments: string[]; message: string; answered_at: string };
}

const json = async <T>(node: TestNode, args: string[]) => JSON.parse(ok(await node.cli([...args, "--json"]))) as T;

// kz ← kz.ala ← kz.ala.metro-01, every step through the CLI as an operator runs it (issue 5).
describe("the fragments CLI on a three-level tree", () => {
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;
  let files: string;
  let id = "";

  beforeAll(async () => {
    files = await makeTempDir("vmtree-fragments-cli-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    await metro.serve();
    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected", 30_000, "the metro connected");
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("fragments add - registers a recording given by a relative path, then says it is already present (R-6.9)", async () => {
    // Run from the examples folder: the node, whose working directory differs, gets the absolute path.
    const args = ["fragments", "add", "--data", metro.dir, "--camera", "metro-01-cam-001", "--file", H264, "--start", "2026-11-20T08:15:00Z", "--end", "2026-11-20T08:15:04Z"];
    const added = JSON.parse(ok(await runCli([...args, "--json"], { cwd: EXAMPLES }))) as FragmentJson & { already_present: boolean };
    expect(added).toMatchObject({
      site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", start: "2026-11-20T08:15:00.000Z", end: "2026-11-20T08:15:04.000Z",
      size: H264_BYTES, sha256: H264_SHA256, incident: false, file_name: H264, already_present: false,
    });
    id = added.id;
    expect(id).toMatch(/^f-[0-9a-f]{32}$/);
    expect(ok(await runCli(args, { cwd: EXAMPLES }))).toBe(`fragment ${id} already present\nsize    ${H264_BYTES} bytes (2.5 MiB)\nsha256  ${H264_SHA256}\n`);
  }, 60_000);

  it("fragments request - a request at kz brings the recording up; list, transfers, requests and export show it (R-28)", async () => {
    const request = await json<Record<string, unknown>>(kz, [
      "fragments", "request", "--site", "kz.ala.metro-01", "--camera", "metro-01-cam-001", "--from", "2026-11-20T08:00:00Z", "--to", "2026-11-20T09:00:00Z",
      "--reason", "incident report 17/2026", "--requested-by", "user:ivanov",
    ]);
    expect(request).toMatchObject({
      id: "kz/1", site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", from: "2026-11-20T08:00:00.000Z", to: "2026-11-20T09:00:00.000Z",
      reason: "incident report 17/2026", requested_by: "user:ivanov", requester: "kz",
    });

    const listed = await waitFor(() => json<FragmentJson[]>(kz, ["fragments", "list"]), (list) => list.some((f) => f.id === id), 60_000, "the fragment listed at kz");
    expect(listed.find((f) => f.id === id)).toMatchObject({ site: "kz.ala.metro-01", size: H264_BYTES, sha256: H264_SHA256, incident: false });
    expect(await json<FragmentJson[]>(kz, ["fragments", "list", "--site", "kz.ast"])).toEqual([]);

    const sent = (await json<TransfersJson>(metro, ["transfers"])).transfers.find((t) => t.fragment_id === id);
    expect(sent).toMatchObject({ peer: "kz.ala", direction: "up", priority: "requested", state: "done", bytes_done: H264_BYTES, bytes_total: H264_BYTES, resent_bytes: 0, attempts: 1, eta_ms: null });
    const relayed = (await json<TransfersJson>(ala, ["transfers"])).transfers.find((t) => t.fragment_id === id && t.direction === "up");
    expect(relayed).toMatchObject({ peer: "kz", priority: "requested", state: "done", bytes_done: H264_BYTES, bytes_total: H264_BYTES });

    const requests = await waitFor(() => json<RequestStateJson[]>(kz, ["fragments", "requests"]), (r) => r[0]?.state === "delivered", 20_000, "the request delivered");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ id: "kz/1", state: "delivered", delivered: 1, outcome: { state: "found", fragments: [id], message: "1 fragment(s) on their way" } });
    expect(ok(await kz.cli(["fragments", "requests"]))).toContain("kz/1  delivered (1 of 1 delivered here)\n");

    const exported = ok(await runCli(["fragments", "export", "--data", kz.dir, "--id", id, "--out", "exported.mp4"], { cwd: files }));
    expect(exported).toBe(`exported fragment ${id} to ${join(files, "exported.mp4")}\nwritten ${H264_BYTES} bytes (2.5 MiB)\nsha256  ${H264_SHA256}\n`);
    expect((await readFile(join(files, "exported.mp4"))).equals(await readFile(join(EXAMPLES, H264)))).toBe(true);
  }, 120_000);

  it("limit - a cap set at kz.ala reaches the metro within seconds, and none lifts it (R-6.19)", async () => {
    expect(ok(await ala.cli(["limit", "--site", "kz.ala.metro-01", "--bandwidth", "20Mbit"]))).toBe(
      "cap for fragments on the link of kz.ala.metro-01: 20 Mbit/s (20000000 bits per second)\n",
    );
    await waitFor(() => json<TransfersJson>(metro, ["transfers"]), (t) => t.cap_bits_per_second === 20_000_000 && t.cap_source === "parent", 10_000, "the cap at the metro");
    expect(ok(await metro.cli(["transfers"]))).toMatch(/^cap on the parent link: 20 Mbit\/s \(20000000 bits per second\) set by the parent\n/);
    expect(ok(await ala.cli(["limit", "--site", "kz.ala.metro-01", "--bandwidth", "none"]))).toBe("cap for fragments on the link of kz.ala.metro-01 lifted\n");
    await waitFor(() => json<TransfersJson>(metro, ["transfers"]), (t) => t.cap_bits_per_second === null && t.cap_source === "none", 10_000, "the cap lifted at the metro");
  }, 60_000);

  it("fragments CLI - bad flag values are usage errors (exit 2) naming the flag and the value", async () => {
    const add = ["fragments", "add", "--camera", "metro-01-cam-001", "--file", join(EXAMPLES, H264)];
    const request = ["fragments", "request", "--site", "kz.ala.metro-01", "--camera", "metro-01-cam-001", "--from", "2026-11-20T08:00:00Z", "--to", "2026-11-20T09:00:00Z"];
    const cases: [TestNode, string[], string][] = [
      [ala, ["limit", "--site", "kz.ala.metro-01", "--bandwidth", "20 furlongs"], "--bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20 furlongs`"],
      [ala, ["limit", "--site", "kz.ala.metro-01", "--bandwidth", "20MB"], "--bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `20MB`"],
      [metro, [...add, "--start", "2026-11-20T08:15:04Z", "--end", "2026-11-20T08:15:00Z"], "expected --end at or after --start (2026-11-20T08:15:04.000Z), got `2026-11-20T08:15:00Z`"],
      [metro, [...add, "--start", "2099-01-01T00:00:00Z", "--end", "2099-01-01T00:01:00Z"], "expected --end in the past (a recording that has ended), got `2099-01-01T00:01:00Z`"],
      [metro, [...add, "--start", "2026-11-20T08:15:00", "--end", "2026-11-20T08:15:04Z"], "expected --start like 2026-12-03 or 2026-12-03T10:00:00Z (a date-time needs Z or an offset), got `2026-11-20T08:15:00`"],
      [metro, ["fragments", "add", "--camera", "../cam", "--file", H264, "--start", "2026-11-20T08:15:00Z", "--end", "2026-11-20T08:15:04Z"], "expected --camera to be a camera id like metro-01-cam-001 (letters, digits, '.', '_', '-'; at most 64), got `../cam`"],
      [kz, [...request, "--requested-by", "user:ivanov"], "missing --reason"],
      [kz, [...request, "--reason", "   ", "--requested-by", "user:ivanov"], 'expected --reason to say why the recordings are needed in 1 to 1000 printable characters, got "   "'],
      [kz, [...request, "--reason", "audit"], "missing --requested-by"],
      [kz, ["fragments", "export", "--id", "../../etc/passwd", "--out", join(files, "x")], "expected --id to be a fragment id (f-… as `vmtree fragments list` shows), got `../../etc/passwd`"],
      [kz, ["fragments", "list", "--site", "KZ"], 'invalid site id "KZ": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and \'-\', starting with a letter or digit'],
    ];
    for (const [node, args, message] of cases) {
      const result = await node.cli(args);
      expect({ args, code: result.code, stderr: result.stderr, stdout: result.stdout }).toEqual({ args, code: 2, stderr: `vmtree: ${message}\n${USAGE}`, stdout: "" });
    }
  }, 120_000);

  it("fragments CLI - values the node refuses fail with exit 1 and its reason", async () => {
    const cases: [TestNode, string[], string][] = [
      [kz, ["limit", "--site", "kz.ala.metro-01", "--bandwidth", "1Mbit"], "[invalid_argument] kz.ala.metro-01 is not an enrolled child of kz; set the cap on its parent"],
      [kz, ["fragments", "export", "--id", "f-00000000000000000000000000000000", "--out", join(files, "none.mp4")], "[not_found] fragment f-00000000000000000000000000000000 is not held here; `vmtree fragments list` shows those that are"],
      [kz, ["fragments", "export", "--id", id, "--out", join(files, "exported.mp4")], `[already_exists] ${join(files, "exported.mp4")} exists; choose another --out`],
      [kz, ["fragments", "export", "--id", id, "--out", join(files, "no-such-dir", "x.mp4")], `[failed_precondition] cannot write ${join(files, "no-such-dir", "x.mp4")}: ${join(files, "no-such-dir")} is not a directory; create it or choose another --out`],
      [kz, ["fragments", "request", "--site", "kz", "--camera", "c1", "--from", "2026-11-20", "--to", "2026-11-21", "--reason", "r", "--requested-by", "w"], "[invalid_argument] --site kz is this node: its recordings are here already (vmtree fragments list)"],
    ];
    for (const [node, args, message] of cases) {
      const result = await node.cli(args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 1, stderr: `vmtree: ${message}\n` });
    }
  }, 60_000);

  it("transfers --watch - without a terminal prints plain snapshots every second and exits 0 on SIGTERM", async () => {
    const watch = spawnNode(["transfers", "--data", metro.dir, "--watch"]);
    await waitFor(async () => watch.stdout().match(/^transfers at /gm)?.length ?? 0, (n) => n >= 3, 20_000, "three snapshots");
    const stopped = Date.now();
    await watch.kill("SIGTERM");
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopped).toBeLessThan(3_000);
    const text = watch.stdout();
    expect(text).not.toContain("\u001b");
    expect(text).toMatch(/^transfers at \d{4}-\d\d-\d\dT[\d:.]+Z\ncap on the parent link: none\nFRAGMENT +PEER +DIRECTION +PRIORITY +STATE +PROGRESS +DONE/);
    expect(text).toContain(`${id}  kz.ala  up         requested  done   [####################] 100%  ${H264_BYTES} bytes (2.5 MiB)`);
    expect(watch.stderr()).toBe("");
  }, 60_000);

  it("transfers --watch --json - one JSON document per line, and exit 0 on SIGINT", async () => {
    const watch = spawnNode(["transfers", "--data", metro.dir, "--watch", "--json"]);
    await waitFor(async () => watch.stdout().split("\n").length - 1, (n) => n >= 2, 20_000, "two lines");
    await watch.kill("SIGINT");
    expect(await watch.exited).toEqual({ code: 0, signal: null });
    const lines = watch.stdout().trimEnd().split("\n").map((line) => JSON.parse(line) as TransfersJson);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line).toMatchObject({ cap_bits_per_second: null, cap_source: "none", transfers: [expect.objectContaining({ fragment_id: id, state: "done" })] });
  }, 60_000);
});

describe("the fragments CLI on a stopped node", () => {
  let root: TestNode;

  beforeAll(async () => {
    root = await initRoot("kz");
  }, 30_000);

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("fragments add - works on a node that never served: the CLI opens its store", async () => {
    const args = ["fragments", "add", "--camera", "kz-cam-1", "--file", join(EXAMPLES, "cam-ast-003_20261121T220000Z.avi"), "--start", "2026-11-21T22:00:00Z", "--end", "2026-11-21T22:00:03Z", "--incident"];
    expect(ok(await root.cli(args)).split("\n")[0]).toMatch(/^fragment f-[0-9a-f]{32} added \(incident\)$/);
    const [held] = await json<FragmentJson[]>(root, ["fragments", "list"]);
    expect(held).toMatchObject({ site: "kz", camera_id: "kz-cam-1", size: 476_372, incident: true });
  }, 60_000);

  it("transfers --watch - on a stopped node fails with exit 1 and leaves the store free for serve", async () => {
    const watched = await root.cli(["transfers", "--watch"]);
    expect(watched).toMatchObject({ code: 1, stdout: "", stderr: `vmtree: [unavailable] the node of ${root.dir} is not running (no answer on its admin socket); start it with vmtree serve\n` });
    await root.serve();
    await root.stop();
  }, 60_000);
});

describe("transfers --watch on a terminal", () => {
  let root: TestNode;

  beforeAll(async () => {
    root = await initRoot("kz");
    await root.serve();
  }, 30_000);

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  // In this process, so that stdout can be a terminal; the signal is the command's own listener
  // called directly, since a real one would reach the test runner too.
  it.each([
    [[], /^\u001b\[H\u001b\[Jtransfers at \S+ \(Ctrl-C to stop\)\ncap on the parent link: none\n0 transfer\(s\)\n\u001b\[H\u001b\[Jtransfers at /],
    [["--json"], /^\{"at":"[^"]+","cap_bits_per_second":null,"cap_source":"none","transfers":\[\]\}\n\{"at":/],
  ])("transfers --watch %j - on a terminal, a SIGTERM ends it with exit 0 and its listeners removed", async (extra, frames) => {
    const listening = { SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") };
    let text = "";
    const run = main(["transfers", "--data", root.dir, "--watch", ...extra], { stdout: (t) => (text += t), stderr: (t) => (text += t), isTTY: true });
    await waitFor(async () => text.match(/transfers at |\{"at":/g)?.length ?? 0, (n) => n >= 2, 20_000, "two frames");
    const ours = process.listeners("SIGTERM").filter((listener) => !listening.SIGTERM.includes(listener));
    expect(ours).toHaveLength(1);
    ours[0]!("SIGTERM");
    expect(await run).toBe(0);
    expect(text).toMatch(frames);
    expect({ SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") }).toEqual(listening);
  }, 40_000);
});
