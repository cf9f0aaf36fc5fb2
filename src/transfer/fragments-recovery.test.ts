import { createHash } from "node:crypto";
import { mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AuditLog } from "../audit/audit-log.ts";
import type { Fragment } from "../gen/vmtree/v1/fragment.ts";
import { NodeStore } from "../store/node-store.ts";
import { createLogger } from "../util/log.ts";
import { fragmentIdFor } from "./fragment-meta.ts";
import { Fragments, PARTIAL_EXPIRY_MS } from "./fragments.ts";
import { RateLimiter } from "./rate-limiter.ts";

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);
const DAY_MS = 86_400_000;

let dir: string;
let store: NodeStore;
let limiter: RateLimiter;
let audit: AuditLog;
let fragments: Fragments;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-fragments-"));
  store = await NodeStore.open(path.join(dir, "db"));
  limiter = new RateLimiter({ bitsPerSecond: Infinity });
  audit = new AuditLog(store, "kz", 1);
  fragments = fragmentsAt("kz");
  await fragments.open();
});

/** The fragments of a node at `site` on the test's store, as a (re)started node makes them. */
function fragmentsAt(site: string, parentSite?: string): Fragments {
  return new Fragments({
    site, ...(parentSite ? { parentSite } : {}), store, dir: path.join(dir, "fragments"), audit, log: createLogger("test", "error"), limiter, concurrency: 1, isChild: async () => true,
  });
}

afterEach(async () => {
  vi.useRealTimers();
  await fragments.close();
  limiter.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function fragmentOf(camera: string, size: number): Fragment {
  const fragment: Fragment = {
    id: "", site: "kz.ala", camera_id: camera, start_ms: NOW - DAY_MS, end_ms: NOW - DAY_MS + 60_000, size,
    sha256: "ab".repeat(32), incident: false, file_name: `${camera}.mp4`, added_ms: NOW - DAY_MS,
  };
  fragment.id = fragmentIdFor(fragment);
  return fragment;
}

/** Starts an upload from kz.ala and commits `bytes` of it, as the receiver would. */
async function partialUpload(fragment: Fragment, bytes: number): Promise<void> {
  const partial = await fragments.archive.resumeUpload({ fragment, from: "kz.ala", priority: "requested", requestId: "kz/1" });
  const file = await fragments.archive.openPartial(fragment.id);
  try {
    await fragments.archive.writeChunk(file, partial, Buffer.alloc(bytes, 7));
  } finally {
    await file.close();
  }
}

describe("Fragments.sweep", () => {
  it("Fragments.sweep - an upload untouched for 7 days expires with its partial file and an audit record; a newer one and a recorder's staging file stay", async () => {
    const abandoned = fragmentOf("cam-1", 4_000);
    const recent = fragmentOf("cam-2", 5_000);
    await partialUpload(abandoned, 1_000);
    vi.setSystemTime(NOW + 3 * DAY_MS);
    await partialUpload(recent, 2_000);
    const partialDir = path.join(dir, "fragments", "partial");
    await writeFile(path.join(partialDir, "stray.part"), "left by a crash");
    await writeFile(path.join(partialDir, "add-1-2-x"), "a recording being added");

    // Exactly 7 days is not yet abandoned.
    await fragments.sweep(NOW + PARTIAL_EXPIRY_MS);
    expect((await fragments.archive.partials()).map((p) => p.fragment.id).sort()).toEqual([abandoned.id, recent.id].sort());
    expect(await audit.list({ action: "fragment.upload.expire" })).toEqual([]);

    vi.setSystemTime(NOW + 7 * DAY_MS + 1);
    await fragments.sweep(NOW + PARTIAL_EXPIRY_MS + 1);
    expect((await fragments.archive.partials()).map((p) => [p.fragment.id, p.committed])).toEqual([[recent.id, 2_000]]);
    expect((await readdir(partialDir)).sort()).toEqual(["add-1-2-x", `${recent.id}.part`]);
    const expired = await audit.list({ action: "fragment.upload.expire" });
    expect(expired.map((e) => ({ origin: e.origin, time_ms: e.time_ms, actor: e.actor, target: e.target, result: e.result, details: JSON.parse(e.details) as unknown }))).toEqual([
      { origin: "kz", time_ms: NOW + 7 * DAY_MS + 1, actor: "node", target: abandoned.id, result: "ok", details: { from: "kz.ala", committed: 1_000, size: 4_000 } },
    ]);

    // A later attempt at the abandoned fragment starts again from 0.
    const again = await fragments.archive.resumeUpload({ fragment: abandoned, from: "kz.ala", priority: "requested", requestId: "kz/1" });
    expect(again.committed).toBe(0);
  });
});

describe("Fragments.open", () => {
  const content = Buffer.alloc(3_000, 9);
  const incident: Fragment = {
    id: "", site: "kz.ala.metro-01", camera_id: "cam-9", start_ms: NOW - 60_000, end_ms: NOW, size: content.byteLength,
    sha256: createHash("sha256").update(content).digest("hex"), incident: true, file_name: "cam-9.mp4", added_ms: NOW - 60_000,
  };
  incident.id = fragmentIdFor(incident);

  /** kz.ala receives the whole incident fragment from kz.ala.metro-01 and is killed at `stage`; then it restarts. */
  async function crashedAt(stage: "moved into place" | "recorded held"): Promise<Fragments> {
    const before = fragmentsAt("kz.ala", "kz");
    await before.open();
    const partial = await before.archive.resumeUpload({ fragment: incident, from: "kz.ala.metro-01", priority: "incident", requestId: "" });
    const file = await before.archive.openPartial(incident.id);
    await before.archive.writeChunk(file, partial, content);
    await file.close();
    if (stage === "moved into place") await rename(path.join(dir, "fragments", "partial", `${incident.id}.part`), before.archive.pathOf(incident.id));
    else await before.archive.completeUpload(partial);
    await before.close();
    const after = fragmentsAt("kz.ala", "kz");
    await after.open();
    return after;
  }

  for (const stage of ["moved into place", "recorded held"] as const) {
    it(`Fragments.open - an upload killed once ${stage} is held, audited as received and queued for the parent on restart (R-6.7)`, async () => {
      const restarted = await crashedAt(stage);
      try {
        expect((await restarted.archive.get(incident.id))?.fragment).toEqual(incident);
        expect(await restarted.archive.partials()).toEqual([]);
        const receipts = await audit.list({ action: "fragment.receive" });
        expect(receipts.map((e) => [e.actor, e.target, e.result])).toEqual([["site:kz.ala.metro-01", incident.id, "ok"]]);
        const { up } = await restarted.transfers();
        expect(up.map((j) => [j.fragmentId, j.priority, j.state, j.total])).toEqual([[incident.id, "incident", "waiting", content.byteLength]]);
      } finally {
        await restarted.close();
      }
    });
  }
});

describe("Fragments.add", () => {
  it("Fragments.add - an incident recording taken into the archive by a process killed before it queued the upload is queued when the recorder adds it again (R-6.7)", async () => {
    const site = fragmentsAt("kz.ala.metro-01", "kz.ala");
    await site.open();
    try {
      const recording = path.join(dir, "incident.mp4");
      await writeFile(recording, Buffer.alloc(2_000, 3));
      const recordingOf = { cameraId: "cam-3", filePath: recording, startMs: NOW - 60_000, endMs: NOW, incident: true };
      // What Fragments.add does up to the kill: the recording taken, no job yet.
      await site.archive.addOwn(recording, (size, sha256) => {
        const fragment: Fragment = { id: "", site: "kz.ala.metro-01", camera_id: "cam-3", start_ms: NOW - 60_000, end_ms: NOW, size, sha256, incident: true, file_name: "incident.mp4", added_ms: NOW };
        fragment.id = fragmentIdFor(fragment);
        return fragment;
      });
      expect((await site.transfers()).up).toEqual([]);
      const again = await site.add(recordingOf);
      expect(again.alreadyPresent).toBe(true);
      expect((await site.transfers()).up.map((j) => [j.fragmentId, j.priority, j.state])).toEqual([[again.fragment.id, "incident", "waiting"]]);
    } finally {
      await site.close();
    }
  });
});
