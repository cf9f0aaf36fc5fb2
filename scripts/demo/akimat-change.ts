import { readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Camera } from "../../src/inventory/camera.ts";
import { belowMinimums } from "../../src/inventory/minimums.ts";

/** What {@link writeChangedInventory} changed, to check the national view against. */
export interface InventoryChange {
  /** The modified copy, under the same file name as the original (the format is read from it). */
  file: string;
  modified: { before: Camera; after: Camera };
  removed: Camera;
  added: Camera;
}

interface JsonInventory {
  site: string;
  exported_at: string;
  cameras: Camera[];
}

// akimat-cam-017 records 20 fps, below R-A2.1's 25, and nothing else below the minimums.
const MODIFIED_ID = "akimat-cam-017";
const REMOVED_ID = "akimat-cam-024";
const ADDED_ID = "akimat-cam-025";
// The new camera copies a compliant one; its URL carries credentials that must stay at the site.
const ADDED_TEMPLATE_ID = "akimat-cam-002";

/**
 * Writes into `dir` a copy of the JSON inventory `source` in which one camera is brought up
 * to the R-A2.1 frame rate and bitrate, one camera is removed and a new one is added: the
 * three changes the site makes while its region is down. Rejects when `source` lacks the
 * cameras this relies on, or when the modified camera would still fall short.
 */
export async function writeChangedInventory(source: string, dir: string): Promise<InventoryChange> {
  const inventory = JSON.parse(await readFile(source, "utf8")) as JsonInventory;
  const before = cameraIn(inventory, MODIFIED_ID);
  const removed = cameraIn(inventory, REMOVED_ID);
  const after: Camera = { ...before, fps: Math.max(before.fps, 25), bitrate_kbps: Math.max(before.bitrate_kbps, 6144) };
  const stillBelow = belowMinimums(after);
  if (stillBelow.length > 0) throw new Error(`${MODIFIED_ID} would still fall short: ${stillBelow.join("; ")}`);
  const added: Camera = {
    ...cameraIn(inventory, ADDED_TEMPLATE_ID),
    camera_id: ADDED_ID,
    name: "Служебный вход 25",
    stream_url: "rtsp://operator:Akim4t!2026@10.49.64.25:554/Streaming/Channels/101",
    installed_at: "2026-12-01",
  };
  const cameras = inventory.cameras.filter((c) => c.camera_id !== REMOVED_ID).map((c) => (c.camera_id === MODIFIED_ID ? after : c));
  const file = join(dir, basename(source));
  const changed: JsonInventory = { ...inventory, exported_at: new Date().toISOString(), cameras: [...cameras, added] };
  await writeFile(file, `${JSON.stringify(changed, null, 2)}\n`);
  return { file, modified: { before, after }, removed, added };
}

function cameraIn(inventory: JsonInventory, id: string): Camera {
  const camera = inventory.cameras.find((c) => c.camera_id === id);
  if (!camera) throw new Error(`the sample inventory of ${inventory.site} has no camera ${id}`);
  return camera;
}
