import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Camera, CameraChange } from "../gen/vmtree/v1/inventory.ts";
import { parseInventory } from "../inventory/parse-inventory.ts";
import { stripCredentials } from "../inventory/strip-credentials.ts";
import { NodeStore } from "../store/node-store.ts";
import { sampleCamera } from "../../test/support/camera-fixture.ts";
import { InventoryReplica } from "./inventory-replica.ts";

/** A small camera whose name and stream URL carry its id; every field can be overridden. */
const cam = (id: string, overrides: Partial<Camera> = {}): Camera =>
  sampleCamera(id, { name: `Camera ${id}`, stream_url: `rtsp://10.0.0.1:554/${id}`, mount_height_m: 4.5, ...overrides });

const METRO = "kz.ala.metro-01";
const SECRET_URL = "rtsp://admin:Qwerty123@10.0.0.3:554/Streaming/Channels/101";
const CLEAN_URL = "rtsp://10.0.0.3:554/Streaming/Channels/101";

let dir: string;
let store: NodeStore;
let replica: InventoryReplica;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-replica-"));
  store = await NodeStore.open(path.join(dir, "store"));
  replica = new InventoryReplica(store);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});


function sample(file: string): Camera[] {
  const parsed = parseInventory(file, readFileSync(new URL(`../../examples/inventory/${file}`, import.meta.url)));
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

function change(origin: string, epoch: number, seq: number, camera: Camera | string): CameraChange {
  return typeof camera === "string"
    ? { origin, epoch, seq, camera_id: camera, camera: undefined }
    : { origin, epoch, seq, camera_id: camera.camera_id, camera };
}

/** [seq, camera_id, live] of each change, for compact exact comparisons. */
function summary(changes: CameraChange[]): [number, string, boolean][] {
  return changes.map((c) => [c.seq, c.camera_id, c.camera !== undefined]);
}

async function listed(site?: string): Promise<string[]> {
  return (await replica.list(site)).map((entry) => `${entry.site}/${entry.camera.camera_id}`);
}

describe("InventoryReplica.importOwn", () => {
  it("InventoryReplica.importOwn - counts added, changed, removed and unchanged over three imports", async () => {
    expect(await replica.importOwn(METRO, 1, [cam("c1"), cam("c2"), cam("c3")])).toEqual({ added: 3, changed: 0, removed: 0, unchanged: 0 });
    expect(await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" }), cam("c4")])).toEqual({
      added: 1,
      changed: 1,
      removed: 1,
      unchanged: 1,
    });
    expect(await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" }), cam("c3"), cam("c4", { fps: 12 })])).toEqual({
      added: 1,
      changed: 1,
      removed: 0,
      unchanged: 2,
    });
    expect(await replica.origins()).toEqual([{ origin: METRO, epoch: 1, seq: 8 }]);
  });

  it("InventoryReplica.importOwn - numbers changes in order: incoming cameras first, then removals", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2"), cam("c3")]);
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { name: "renamed" }), cam("c4")]);
    expect(summary(await replica.changesAfter(METRO, 1, 0, 100))).toEqual([
      [1, "c1", true],
      [4, "c2", true],
      [5, "c4", true],
      [6, "c3", false],
    ]);
  });

  it("InventoryReplica.importOwn - removes every camera when imported empty, and counts a tombstone once", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2")]);
    expect(await replica.importOwn(METRO, 1, [])).toEqual({ added: 0, changed: 0, removed: 2, unchanged: 0 });
    expect(await replica.importOwn(METRO, 1, [])).toEqual({ added: 0, changed: 0, removed: 0, unchanged: 0 });
    expect(await replica.list()).toEqual([]);
    expect(await replica.origins()).toEqual([{ origin: METRO, epoch: 1, seq: 4 }]);
  });

  it("InventoryReplica.importOwn - writes nothing and emits nothing when nothing changed", async () => {
    await replica.importOwn(METRO, 1, [cam("c1")]);
    const onChange = vi.fn();
    replica.on("change", onChange);
    expect(await replica.importOwn(METRO, 1, [cam("c1")])).toEqual({ added: 0, changed: 0, removed: 0, unchanged: 1 });
    expect(onChange).not.toHaveBeenCalled();
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2")]);
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(await replica.origins()).toEqual([{ origin: METRO, epoch: 1, seq: 2 }]);
  });

  it("InventoryReplica.importOwn - imports a sample file and reports it all unchanged on re-import", async () => {
    const cameras = sample("kz.ala.metro-01.csv");
    expect(cameras).toHaveLength(40);
    expect(await replica.importOwn(METRO, 1, cameras)).toEqual({ added: 40, changed: 0, removed: 0, unchanged: 0 });
    expect(await replica.importOwn(METRO, 1, sample("kz.ala.metro-01.csv"))).toEqual({ added: 0, changed: 0, removed: 0, unchanged: 40 });
    expect(await replica.countAfter(METRO, 0)).toBe(40);
  });

  it("InventoryReplica.importOwn - does not mix up origins whose ids share a prefix", async () => {
    await replica.importOwn("kz.ala", 1, [cam("a1")]);
    await replica.importOwn("kz.ala.metro-01", 1, [cam("m1"), cam("m2")]);
    await replica.importOwn("kz.ala-2", 1, [cam("x1")]);
    expect(await replica.importOwn("kz.ala", 1, [cam("a1")])).toEqual({ added: 0, changed: 0, removed: 0, unchanged: 1 });
    expect(summary(await replica.changesAfter("kz.ala", 1, 0, 100))).toEqual([[1, "a1", true]]);
    expect(await replica.countAfter("kz.ala", 0)).toBe(1);
  });
});

describe("InventoryReplica credentials", () => {
  it("InventoryReplica credentials - are stripped in changesAfter and list", async () => {
    await replica.importOwn(METRO, 1, [cam("c1", { stream_url: SECRET_URL }), cam("c2")]);
    const changes = await replica.changesAfter(METRO, 1, 0, 100);
    expect(changes.map((c) => c.camera?.stream_url)).toEqual([CLEAN_URL, "rtsp://10.0.0.1:554/c2"]);
    const listedCameras = await replica.list();
    expect(listedCameras.map((entry) => entry.camera.stream_url)).toEqual([CLEAN_URL, "rtsp://10.0.0.1:554/c2"]);
    expect(JSON.stringify([changes, listedCameras])).not.toContain("Qwerty123");
  });

  it("InventoryReplica credentials - are kept in the stored own record, so an unchanged file stays unchanged", async () => {
    const cameras = sample("kz.ala.metro-01.csv");
    const withCredentials = cameras.filter((c) => stripCredentials(c.stream_url) !== c.stream_url);
    expect(withCredentials.length).toBeGreaterThan(0);
    await replica.importOwn(METRO, 1, cameras);

    expect(await replica.importOwn(METRO, 1, sample("kz.ala.metro-01.csv"))).toEqual({ added: 0, changed: 0, removed: 0, unchanged: 40 });
    // Only a stored URL with its password can tell a new password from the old one.
    const rotated = cameras.map((c) => (c.camera_id === withCredentials[0]!.camera_id ? { ...c, stream_url: c.stream_url.replace("@", "x@") } : c));
    expect(await replica.importOwn(METRO, 1, rotated)).toEqual({ added: 0, changed: 1, removed: 0, unchanged: 39 });

    const outgoing = JSON.stringify([await replica.changesAfter(METRO, 1, 0, 1000), await replica.list()]);
    for (const camera of withCredentials) expect(outgoing).not.toContain(camera.stream_url);
    expect(outgoing).not.toContain("@");
  });

  it("InventoryReplica credentials - are stripped from changes applied from a child", async () => {
    await replica.applyChanges([change(METRO, 1, 1, cam("c1", { stream_url: SECRET_URL }))]);
    expect((await replica.list())[0]?.camera.stream_url).toBe(CLEAN_URL);
    expect((await replica.changesAfter(METRO, 1, 0, 10))[0]?.camera?.stream_url).toBe(CLEAN_URL);
  });
});

describe("InventoryReplica.changesAfter", () => {
  it("InventoryReplica.changesAfter - returns only the latest change of each camera, in sequence order", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2"), cam("c3")]);
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" }), cam("c4")]);
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" }), cam("c3"), cam("c4", { fps: 12 })]);
    const changes = await replica.changesAfter(METRO, 1, 0, 100);
    expect(summary(changes)).toEqual([
      [1, "c1", true],
      [4, "c2", true],
      [7, "c3", true],
      [8, "c4", true],
    ]);
    expect(changes[1]).toEqual({ origin: METRO, epoch: 1, seq: 4, camera_id: "c2", camera: cam("c2", { status: "offline" }) });
    expect(changes[3]?.camera?.fps).toBe(12);
  });

  it("InventoryReplica.changesAfter - starts after the given sequence and honours the limit", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2"), cam("c3")]);
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" }), cam("c3"), cam("c4")]);
    expect(summary(await replica.changesAfter(METRO, 1, 1, 100))).toEqual([
      [3, "c3", true],
      [4, "c2", true],
      [5, "c4", true],
    ]);
    expect(summary(await replica.changesAfter(METRO, 1, 3, 1))).toEqual([[4, "c2", true]]);
    expect(await replica.changesAfter(METRO, 1, 5, 100)).toEqual([]);
    expect(await replica.changesAfter("kz.unknown", 1, 0, 100)).toEqual([]);
  });

  it("InventoryReplica.changesAfter - gives tombstones no camera", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2")]);
    await replica.importOwn(METRO, 1, [cam("c2")]);
    const changes = await replica.changesAfter(METRO, 1, 0, 100);
    expect(summary(changes)).toEqual([
      [2, "c2", true],
      [3, "c1", false],
    ]);
    expect(changes[1]).toEqual({ origin: METRO, epoch: 1, seq: 3, camera_id: "c1", camera: undefined });
    expect(changes[1]?.camera).toBeUndefined();
  });

  it("InventoryReplica.changesAfter - handles sequences past 9 in numeric order", async () => {
    const cameras = Array.from({ length: 12 }, (_, i) => cam(`c${String(i).padStart(2, "0")}`));
    await replica.importOwn(METRO, 1, cameras);
    expect((await replica.changesAfter(METRO, 1, 8, 100)).map((c) => c.seq)).toEqual([9, 10, 11, 12]);
  });
});

describe("InventoryReplica.countAfter", () => {
  it("InventoryReplica.countAfter - counts the latest changes above a sequence", async () => {
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2"), cam("c3")]);
    await replica.importOwn(METRO, 1, [cam("c1"), cam("c2", { status: "offline" })]);
    // c1@1, c2@4, c3 tombstone@5
    expect(await replica.countAfter(METRO, 0)).toBe(3);
    expect(await replica.countAfter(METRO, 1)).toBe(2);
    expect(await replica.countAfter(METRO, 4)).toBe(1);
    expect(await replica.countAfter(METRO, 5)).toBe(0);
    expect(await replica.countAfter("kz.ala", 0)).toBe(0);
  });
});

describe("InventoryReplica.applyChanges", () => {
  const batch = () => [change(METRO, 1, 1, cam("c1")), change(METRO, 1, 2, cam("c2")), change(METRO, 1, 3, cam("c3"))];

  it("InventoryReplica.applyChanges - applies a batch and returns the checkpoints it reached", async () => {
    expect(await replica.applyChanges(batch())).toEqual({ checkpoints: [{ origin: METRO, epoch: 1, seq: 3 }], applied: 3 });
    expect(await listed()).toEqual([`${METRO}/c1`, `${METRO}/c2`, `${METRO}/c3`]);
    expect(await replica.checkpointsIn(METRO)).toEqual([{ origin: METRO, epoch: 1, seq: 3 }]);
  });

  it("InventoryReplica.applyChanges - is idempotent: the same batch twice applies nothing the second time", async () => {
    await replica.applyChanges(batch());
    const onChange = vi.fn();
    replica.on("change", onChange);
    expect(await replica.applyChanges(batch())).toEqual({ checkpoints: [{ origin: METRO, epoch: 1, seq: 3 }], applied: 0 });
    expect(onChange).not.toHaveBeenCalled();
    expect(await listed()).toEqual([`${METRO}/c1`, `${METRO}/c2`, `${METRO}/c3`]);
    expect(summary(await replica.changesAfter(METRO, 1, 0, 100))).toEqual([
      [1, "c1", true],
      [2, "c2", true],
      [3, "c3", true],
    ]);
  });

  it("InventoryReplica.applyChanges - applies only the part of an overlapping batch above the checkpoint", async () => {
    await replica.applyChanges(batch().slice(0, 2));
    const result = await replica.applyChanges([...batch().slice(1), change(METRO, 1, 4, cam("c1", { name: "renamed" }))]);
    expect(result).toEqual({ checkpoints: [{ origin: METRO, epoch: 1, seq: 4 }], applied: 2 });
    expect(summary(await replica.changesAfter(METRO, 1, 0, 100))).toEqual([
      [2, "c2", true],
      [3, "c3", true],
      [4, "c1", true],
    ]);
    expect((await replica.list()).map((entry) => entry.camera.name)).toEqual(["renamed", "Camera c2", "Camera c3"]);
  });

  it("InventoryReplica.applyChanges - applies a tombstone", async () => {
    await replica.applyChanges(batch());
    expect(await replica.applyChanges([change(METRO, 1, 4, "c2")])).toEqual({ checkpoints: [{ origin: METRO, epoch: 1, seq: 4 }], applied: 1 });
    expect(await listed()).toEqual([`${METRO}/c1`, `${METRO}/c3`]);
    expect(summary(await replica.changesAfter(METRO, 1, 0, 100))).toEqual([
      [1, "c1", true],
      [3, "c3", true],
      [4, "c2", false],
    ]);
  });

  it("InventoryReplica.applyChanges - skips changes of an older epoch", async () => {
    await replica.applyChanges([change(METRO, 2, 1, cam("n1"))]);
    const result = await replica.applyChanges([change(METRO, 1, 5, cam("old")), change(METRO, 1, 6, "n1")]);
    expect(result).toEqual({ checkpoints: [], applied: 0 });
    expect(await listed()).toEqual([`${METRO}/n1`]);
    expect(await replica.checkpointsIn(METRO)).toEqual([{ origin: METRO, epoch: 2, seq: 1 }]);
  });

  it("InventoryReplica.applyChanges - drops the origin's records when a newer epoch starts", async () => {
    await replica.applyChanges([...batch(), change("kz.ala.metro-02", 1, 1, cam("m2"))]);
    const result = await replica.applyChanges([change(METRO, 2, 1, cam("c9"))]);
    expect(result).toEqual({ checkpoints: [{ origin: METRO, epoch: 2, seq: 1 }], applied: 1 });
    expect(await listed()).toEqual([`${METRO}/c9`, "kz.ala.metro-02/m2"]);
    expect(summary(await replica.changesAfter(METRO, 2, 0, 100))).toEqual([[1, "c9", true]]);
    expect(await replica.countAfter(METRO, 0)).toBe(1);
  });

  it("InventoryReplica.applyChanges - resets the checkpoint of a newer epoch to zero, so its low sequences apply", async () => {
    await replica.applyChanges(batch());
    const result = await replica.applyChanges([change(METRO, 2, 1, cam("c1")), change(METRO, 2, 2, cam("c2"))]);
    expect(result.applied).toBe(2);
    expect(await replica.origins()).toEqual([{ origin: METRO, epoch: 2, seq: 2 }]);
    expect(await listed()).toEqual([`${METRO}/c1`, `${METRO}/c2`]);
  });

  it("InventoryReplica.applyChanges - keeps one checkpoint per origin of a mixed batch", async () => {
    const result = await replica.applyChanges([
      change("kz.ala.metro-01", 1, 1, cam("a")),
      change("kz.ala.metro-02", 3, 7, cam("b")),
      change("kz.ala.metro-01", 1, 2, cam("c")),
    ]);
    expect(result).toEqual({
      checkpoints: [
        { origin: "kz.ala.metro-01", epoch: 1, seq: 2 },
        { origin: "kz.ala.metro-02", epoch: 3, seq: 7 },
      ],
      applied: 3,
    });
  });

  it("InventoryReplica.applyChanges - keeps its data and checkpoints across a reopen", async () => {
    await replica.applyChanges(batch());
    await store.close();
    store = await NodeStore.open(path.join(dir, "store"));
    replica = new InventoryReplica(store);
    expect(await replica.applyChanges(batch())).toEqual({ checkpoints: [{ origin: METRO, epoch: 1, seq: 3 }], applied: 0 });
    expect(await listed()).toEqual([`${METRO}/c1`, `${METRO}/c2`, `${METRO}/c3`]);
  });

  // validateBatch refuses such a batch from a child; the replica still copes with it.
  it("InventoryReplica.applyChanges - drops old-epoch changes queued earlier in the same batch when a newer epoch starts", async () => {
    await replica.applyChanges([change(METRO, 1, 1, cam("x"))]);
    const result = await replica.applyChanges([change(METRO, 1, 2, cam("y")), change(METRO, 2, 3, cam("z"))]);
    expect(result.checkpoints).toEqual([{ origin: METRO, epoch: 2, seq: 3 }]);
    expect(await listed()).toEqual([`${METRO}/z`]);
    expect(summary(await replica.changesAfter(METRO, 2, 0, 100))).toEqual([[3, "z", true]]);
  });
});

describe("InventoryReplica.resetIfNewerEpoch", () => {
  it("InventoryReplica.resetIfNewerEpoch - drops the origin and restarts its checkpoint at zero for a newer epoch", async () => {
    await replica.applyChanges([change(METRO, 1, 1, cam("c1")), change("kz.ala.metro-02", 1, 1, cam("m1"))]);
    expect(await replica.resetIfNewerEpoch(METRO, 2)).toBe(true);
    expect(await replica.checkpointsIn("kz.ala")).toEqual([
      { origin: "kz.ala.metro-01", epoch: 2, seq: 0 },
      { origin: "kz.ala.metro-02", epoch: 1, seq: 1 },
    ]);
    expect(await listed()).toEqual(["kz.ala.metro-02/m1"]);
    expect(await replica.countAfter(METRO, 0)).toBe(0);
    expect(await replica.applyChanges([change(METRO, 2, 1, cam("c2"))])).toEqual({ checkpoints: [{ origin: METRO, epoch: 2, seq: 1 }], applied: 1 });
  });

  it("InventoryReplica.resetIfNewerEpoch - does nothing for the same or an older epoch, or an unknown origin", async () => {
    await replica.applyChanges([change(METRO, 2, 1, cam("c1"))]);
    expect(await replica.resetIfNewerEpoch(METRO, 2)).toBe(false);
    expect(await replica.resetIfNewerEpoch(METRO, 1)).toBe(false);
    expect(await replica.resetIfNewerEpoch("kz.ast", 5)).toBe(false);
    expect(await replica.origins()).toEqual([{ origin: METRO, epoch: 2, seq: 1 }]);
    expect(await listed()).toEqual([`${METRO}/c1`]);
  });
});

describe("InventoryReplica.checkpointsIn", () => {
  it("InventoryReplica.checkpointsIn - returns only origins in the subtree, the site included", async () => {
    await replica.importOwn("kz.ala", 1, [cam("a")]);
    await replica.applyChanges([
      change("kz.ala.metro-01", 1, 2, cam("b")),
      change("kz.al", 4, 1, cam("c")),
      change("kz.ast", 1, 1, cam("d")),
      change("kz.ala.metro-01.x", 1, 9, cam("e")),
    ]);
    expect(await replica.checkpointsIn("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 1 },
      { origin: "kz.ala.metro-01", epoch: 1, seq: 2 },
      { origin: "kz.ala.metro-01.x", epoch: 1, seq: 9 },
    ]);
    expect(await replica.checkpointsIn("kz.al")).toEqual([{ origin: "kz.al", epoch: 4, seq: 1 }]);
    expect(await replica.checkpointsIn("kz.ala.metro-01.x")).toEqual([{ origin: "kz.ala.metro-01.x", epoch: 1, seq: 9 }]);
    expect(await replica.checkpointsIn("kz.shy")).toEqual([]);
    expect((await replica.checkpointsIn("kz")).map((c) => c.origin)).toEqual(["kz.al", "kz.ala", "kz.ala.metro-01", "kz.ala.metro-01.x", "kz.ast"]);
  });
});

describe("InventoryReplica.list", () => {
  beforeEach(async () => {
    await replica.importOwn("kz.ala", 1, [cam("z-own"), cam("a-own")]);
    await replica.applyChanges([
      change("kz.ala.metro-01", 1, 1, cam("m-2")),
      change("kz.ala.metro-01", 1, 2, cam("m-1")),
      change("kz.ala.metro-01", 1, 3, cam("m-gone")),
      change("kz.ala.metro-01", 1, 4, "m-gone"),
      change("kz.al", 1, 1, cam("al-1")),
      change("kz.ast", 1, 1, cam("ast-1")),
    ]);
  });

  it("InventoryReplica.list - lists every live camera sorted by site then camera id", async () => {
    expect(await listed()).toEqual([
      "kz.al/al-1",
      "kz.ala/a-own",
      "kz.ala/z-own",
      "kz.ala.metro-01/m-1",
      "kz.ala.metro-01/m-2",
      "kz.ast/ast-1",
    ]);
  });

  it("InventoryReplica.list - filters by subtree", async () => {
    expect(await listed("kz.ala")).toEqual(["kz.ala/a-own", "kz.ala/z-own", "kz.ala.metro-01/m-1", "kz.ala.metro-01/m-2"]);
    expect(await listed("kz.ala.metro-01")).toEqual(["kz.ala.metro-01/m-1", "kz.ala.metro-01/m-2"]);
    expect(await listed("kz.al")).toEqual(["kz.al/al-1"]);
    expect(await listed("kz.shy")).toEqual([]);
  });

  it("InventoryReplica.list - returns whole cameras with their site", async () => {
    expect((await replica.list("kz.ala.metro-01"))[0]).toEqual({ site: "kz.ala.metro-01", camera: cam("m-1") });
  });
});
