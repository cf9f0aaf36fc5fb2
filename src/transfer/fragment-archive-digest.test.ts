import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Fragment } from "../gen/vmtree/v1/fragment.ts";
import { NodeStore } from "../store/node-store.ts";
import { FragmentArchive } from "./fragment-archive.ts";
import { fragmentIdFor } from "./fragment-meta.ts";

let dir: string;
let store: NodeStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-fragment-archive-"));
  store = await NodeStore.open(path.join(dir, "db"));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const CHUNK = 64 * 1024;

function describeContent(content: Buffer, sha256 = createHash("sha256").update(content).digest("hex")): Fragment {
  const fragment: Fragment = {
    id: "", site: "kz.ast", camera_id: "cam-1", start_ms: 1_700_000_000_000, end_ms: 1_700_000_060_000,
    size: content.length, sha256, incident: false, file_name: "cam-1.mp4", added_ms: 1_700_000_070_000,
  };
  return { ...fragment, id: fragmentIdFor(fragment) };
}

async function openArchive(): Promise<FragmentArchive> {
  const archive = new FragmentArchive(store, path.join(dir, "fragments"));
  await archive.open();
  return archive;
}

/** Starts or resumes an upload of `fragment` and writes `content` from its committed offset up to `until`. */
async function upload(archive: FragmentArchive, fragment: Fragment, content: Buffer, until = content.length) {
  const partial = await archive.resumeUpload({ fragment, from: "kz.ast", priority: "requested", requestId: "" });
  const file = await archive.openPartial(fragment.id);
  try {
    while (partial.committed < until) {
      await archive.writeChunk(file, partial, content.subarray(partial.committed, Math.min(until, partial.committed + CHUNK)));
    }
  } finally {
    await file.close();
  }
  return partial;
}

describe("fragment archive uploads", () => {
  it("fragment archive - an upload written chunk by chunk is checked against its SHA-256 and moved into place", async () => {
    const archive = await openArchive();
    const content = randomBytes(5 * CHUNK + 123);
    const fragment = describeContent(content);
    const partial = await upload(archive, fragment, content);
    const held = await archive.completeUpload(partial);
    expect(held.fragment.id).toBe(fragment.id);
    expect((await readFile(archive.pathOf(fragment.id))).equals(content)).toBe(true);
    // The upload's record stays until what follows a receipt (audit, the next hop) is done.
    expect(await archive.partial(fragment.id)).toMatchObject({ committed: content.length });
    await archive.settleUpload(fragment.id);
    expect(await archive.partial(fragment.id)).toBeUndefined();
  });

  it("fragment archive - an upload whose bytes do not match the SHA-256 is refused with DATA_LOSS and dropped, to start again from 0", async () => {
    const archive = await openArchive();
    const content = randomBytes(3 * CHUNK);
    const fragment = describeContent(content, "0".repeat(64));
    const partial = await upload(archive, fragment, content);
    await expect(archive.completeUpload(partial)).rejects.toMatchObject({ code: "data_loss" });
    expect(await archive.partial(fragment.id)).toBeUndefined();
    await expect(stat(archive.pathOf(fragment.id))).rejects.toMatchObject({ code: "ENOENT" });
    const again = await archive.resumeUpload({ fragment, from: "kz.ast", priority: "requested", requestId: "" });
    expect(again.committed).toBe(0);
  });

  it("fragment archive - an upload resumed after a restart is checked over the bytes committed before it too", async () => {
    const content = randomBytes(6 * CHUNK);
    const fragment = describeContent(content);
    await upload(await openArchive(), fragment, content, 2 * CHUNK);
    // A fresh archive on the same store is what a restarted node has: no digest in memory.
    const restarted = await openArchive();
    const partial = await upload(restarted, fragment, content);
    expect((await restarted.completeUpload(partial)).fragment.sha256).toBe(fragment.sha256);
  });

  it("fragment archive - bytes committed before a restart and damaged on disk since are caught at completion", async () => {
    const content = randomBytes(4 * CHUNK);
    const fragment = describeContent(content);
    await upload(await openArchive(), fragment, content, 2 * CHUNK);
    const file = await open(path.join(dir, "fragments", "partial", `${fragment.id}.part`), "r+");
    await file.write(Buffer.from([content[10]! ^ 0xff]), 0, 1, 10);
    await file.close();
    const restarted = await openArchive();
    const partial = await upload(restarted, fragment, content);
    await expect(restarted.completeUpload(partial)).rejects.toMatchObject({ code: "data_loss" });
  });

  it("fragment archive - a resumed attempt in the same process goes on from the committed offset and completes", async () => {
    const archive = await openArchive();
    const content = randomBytes(4 * CHUNK + 7);
    const fragment = describeContent(content);
    await upload(archive, fragment, content, 3 * CHUNK);
    const partial = await upload(archive, fragment, content);
    expect(partial.committed).toBe(content.length);
    expect((await archive.completeUpload(partial)).fragment.size).toBe(content.length);
    expect((await readFile(archive.pathOf(fragment.id))).equals(content)).toBe(true);
  });
});
