import { lstat, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
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
describe("break: fragments through the admin API", () => {
  let kz: TestNode;
  let ala: TestNode;
  let admin: NodeAdmin;
  let files: string;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-break-files-");
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
  });

  it("break - export refuses an existing --out, a symlink at --out, and a path in /proc; it never writes through a symlink", async () => {
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

  it("break - export never writes through a symlink planted where it stages its copy", async () => {
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

  it("break - a directory and /dev/zero are refused as recordings with INVALID_ARGUMENT", async () => {
    const dir = join(files, "a-dir");
    await mkdir(dir);
    await expect(admin.addFragment(recording(dir))).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(admin.addFragment(recording("/dev/zero"))).rejects.toMatchObject({ code: "invalid_argument" });
    expect((await admin.listFragments({ site: "" })).fragments.filter((f) => f.file_name === "zero" || f.file_name === "a-dir")).toEqual([]);
  }, 30_000);

  it("break - a request with a reason over 1000 characters, a control character or a blank one is refused with INVALID_ARGUMENT", async () => {
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
