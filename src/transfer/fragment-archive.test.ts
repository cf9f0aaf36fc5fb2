import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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
  store = await NodeStore.open(path.join(dir, "store"));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("FragmentArchive", () => {
  it("FragmentArchive.addOwn - takes a recording into an archive never opened, as on a node that has never run", async () => {
    const recording = path.join(dir, "recording.mp4");
    await writeFile(recording, "a recording");
    const archive = new FragmentArchive(store, path.join(dir, "fragments"));
    const { held, alreadyPresent } = await archive.addOwn(recording, (size, sha256) => {
      const fragment: Fragment = { id: "", site: "kz", camera_id: "kz-cam-001", start_ms: 1_000, end_ms: 2_000, size, sha256, incident: false, file_name: "recording.mp4", added_ms: 3_000 };
      return { ...fragment, id: fragmentIdFor(fragment) };
    });
    expect(alreadyPresent).toBe(false);
    expect(held.fragment.size).toBe(11);
    expect(await readFile(archive.pathOf(held.fragment.id), "utf8")).toBe("a recording");
    expect(existsSync(recording)).toBe(true);
    expect((await archive.list()).map((h) => h.fragment.id)).toEqual([held.fragment.id]);
  });
});
