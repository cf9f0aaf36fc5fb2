import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { lstat, mkdir, mkdtemp, open, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, type TestNode } from "./support/tree.ts";

const ms = (iso: string) => Date.parse(iso);
let camera = 0;
const recording = (file: string) => {
  camera += 1;
  return { camera_id: `cam-${camera}`, file_path: file, start_ms: ms("2026-11-20T08:00:00Z") + camera, end_ms: ms("2026-11-20T08:01:00Z") + camera, incident: false };
};

// A served root kz and its child kz.ala, served: the admin API of a site as its recorder and its
// operator use it, with paths that are not plain recordings (issue 5 item 1, issue 6 hostile input).
describe("hostile: fragments through the admin API", () => {
  let kz: TestNode;
  let ala: TestNode;
  let admin: NodeAdmin;
  let files: string;
  /** On another file system than the data directory, so that the archive cannot hard-link from it. */
  let shm: string;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-hostile-files-");
    shm = await mkdtemp("/dev/shm/vmtree-hostile-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    admin = await connectAdmin(ala.dir);
  }, 60_000);

  afterAll(async () => {
    await admin?.close();
    await killAll();
    await removeTempDirs();
    if (shm) await rm(shm, { recursive: true, force: true });
  });

  it("hostile - export refuses an existing --out, a symlink at --out, and a path in /proc; it never writes through a symlink", async () => {
    const source = join(files, "rec.mp4");
    await writeFile(source, "recording bytes");
    const { fragment } = await admin.addFragment(recording(source));
    const id = fragment!.id;
    const existing = join(files, "existing");
    await writeFile(existing, "keep me");
    await expect(admin.exportFragment({ id, out_path: existing })).rejects.toMatchObject({ code: "already_exists" });
    expect(await readFile(existing, "utf8")).toBe("keep me");
    const victim = join(files, "victim");
    await writeFile(victim, "victim");
    const link = join(files, "link-to-victim");
    await symlink(victim, link);
    await expect(admin.exportFragment({ id, out_path: link })).rejects.toMatchObject({ code: "already_exists" });
    const dangling = join(files, "dangling");
    await symlink(join(files, "nowhere"), dangling);
    await admin.exportFragment({ id, out_path: dangling }).catch(() => undefined);
    // Whatever the answer, nothing was written where the dangling link points.
    await expect(lstat(join(files, "nowhere"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(admin.exportFragment({ id, out_path: "/proc/self/vmtree-out" })).rejects.toMatchObject({ code: "failed_precondition" });
  }, 30_000);

  it("hostile - export never writes through a symlink planted where it stages its copy", async () => {
    const source = join(files, "staged.mp4");
    await writeFile(source, "staged recording");
    const { fragment } = await admin.addFragment(recording(source));
    const victim = join(files, "victim-of-staging");
    await writeFile(victim, "victim");
    // Whoever may write in the --out folder plants the staging name ahead of the export.
    await symlink(victim, join(files, ".planted.mp4.vmtree-export"));
    const out = join(files, "planted.mp4");
    await admin.exportFragment({ id: fragment!.id, out_path: out });
    expect(await readFile(victim, "utf8")).toBe("victim");
    expect(await readFile(out, "utf8")).toBe("staged recording");
  }, 30_000);

  it("hostile - a directory and /dev/zero are refused as recordings with INVALID_ARGUMENT", async () => {
    const dir = join(files, "a-dir");
    await mkdir(dir);
    await expect(admin.addFragment(recording(dir))).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(admin.addFragment(recording("/dev/zero"))).rejects.toMatchObject({ code: "invalid_argument" });
    expect((await admin.listFragments({ site: "" })).fragments.filter((f) => f.file_name === "zero" || f.file_name === "a-dir")).toEqual([]);
  }, 30_000);

  it("hostile - FIFOs as recordings are refused at once; the node does not hang on them and keeps answering", async () => {
    // Four: as many as libuv's thread pool has threads, which the store's reads and writes need too.
    const fifos = [1, 2, 3, 4].map((n) => join(shm, `rec-${n}.fifo`));
    for (const fifo of fifos) execFileSync("mkfifo", [fifo]);
    const timeout = <T>(promise: Promise<T>, what: string) => Promise.race([promise, new Promise<string>((resolve) => setTimeout(() => resolve(what), 5_000))]);
    const answers = fifos.map((fifo) => admin.addFragment(recording(fifo)).then(() => "accepted", (error: { code?: string }) => error.code ?? "error"));
    const outcomes = await timeout(Promise.all(answers), "no answer after 5 s");
    const list = await timeout(admin.listFragments({ site: "" }).then(() => "answered"), "the node does not answer a listing after 5 s");
    // Let blocked open()s go, should there be any, so that the node can stop.
    for (const fifo of fifos) await (await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined))?.close();
    expect({ outcomes, list }).toEqual({ outcomes: ["invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument"], list: "answered" });
  }, 30_000);

  it("hostile - a symlink registered as a recording is archived as the file it names, not as a link", async () => {
    const target = join(files, "target.mp4");
    await writeFile(target, "the real recording");
    const link = join(files, "link.mp4");
    await symlink(target, link);
    const { fragment } = await admin.addFragment(recording(link));
    const archived = join(ala.dir, "fragments", fragment!.id);
    expect((await lstat(archived)).isSymbolicLink()).toBe(false);
    expect(await readFile(archived, "utf8")).toBe("the real recording");
  }, 30_000);

  it("hostile - a request with a reason over 1000 characters, a control character or a blank one is refused with INVALID_ARGUMENT", async () => {
    const base = { site: "kz.ala", camera_id: "cam-1", from_ms: 0, to_ms: 1, requested_by: "user:probe" };
    const kzAdmin = await connectAdmin(kz.dir);
    try {
      for (const reason of ["x".repeat(1001), "a\u0000b", "   ", "line\nbreak"]) {
        await expect(kzAdmin.requestFragments({ ...base, reason })).rejects.toMatchObject({ code: "invalid_argument" });
      }
      await expect(kzAdmin.requestFragments({ ...base, reason: "ok", requested_by: "y".repeat(201) })).rejects.toMatchObject({ code: "invalid_argument" });
      expect((await kzAdmin.listFragmentRequests({})).requests).toEqual([]);
    } finally {
      await kzAdmin.close();
    }
  }, 30_000);
});
