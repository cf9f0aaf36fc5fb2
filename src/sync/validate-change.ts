import { VmtreeError } from "../errors.ts";
import type { Camera, CameraChange } from "../gen/vmtree/v1/inventory.ts";
import type { Checkpoint } from "../gen/vmtree/v1/link.ts";
import { checkSiteId, isInSubtree } from "../pki/site-id.ts";

/** Most changes one batch may carry. */
export const MAX_BATCH_CHANGES = 1000;
const MAX_STRING = 512;
const CAMERA_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks a batch received from `childSite`: every origin inside the child's subtree
 * (the child's certificate decides that, not the message), sane ids and numbers, one
 * epoch per origin and sequences strictly increasing per origin.
 * Throws `permission_denied` for an origin outside the subtree, `invalid_argument` otherwise.
 */
export function validateBatch(batch: { changes: readonly CameraChange[]; new_epochs: readonly Checkpoint[] }, childSite: string): void {
  const { changes } = batch;
  if (batch.new_epochs.length > MAX_BATCH_CHANGES) invalid("new_epochs (too many)", batch.new_epochs.length);
  for (const announced of batch.new_epochs) {
    checkOrigin(announced.origin, childSite);
    if (!Number.isSafeInteger(announced.epoch) || announced.epoch < 1) invalid("epoch", announced.epoch);
  }
  if (changes.length > MAX_BATCH_CHANGES) {
    throw new VmtreeError("invalid_argument", `a batch carries at most ${MAX_BATCH_CHANGES} changes, got ${changes.length}`);
  }
  const last = new Map<string, { epoch: number; seq: number }>();
  for (const change of changes) {
    checkOrigin(change.origin, childSite);
    if (!Number.isSafeInteger(change.epoch) || change.epoch < 1) invalid("epoch", change.epoch);
    if (!Number.isSafeInteger(change.seq) || change.seq < 1) invalid("seq", change.seq);
    const previous = last.get(change.origin);
    if (previous && previous.epoch !== change.epoch) invalid("epoch (one epoch per origin in a batch)", change.epoch);
    if ((previous?.seq ?? 0) >= change.seq) invalid("seq (not increasing)", change.seq);
    last.set(change.origin, { epoch: change.epoch, seq: change.seq });
    if (!CAMERA_ID.test(change.camera_id)) invalid("camera_id", change.camera_id);
    if (change.camera) validateCamera(change.camera, change.camera_id);
  }
}

function checkOrigin(origin: string, childSite: string): void {
  const checked = checkSiteId(origin);
  if (!checked.ok) throw checked.error;
  if (!isInSubtree(origin, childSite)) {
    throw new VmtreeError("permission_denied", `site ${childSite} may not send data for ${origin}`);
  }
}

function validateCamera(camera: Camera, cameraId: string): void {
  if (camera.camera_id !== cameraId) invalid("camera.camera_id", camera.camera_id);
  for (const [field, value] of Object.entries(camera)) {
    if (typeof value === "string" && value.length > MAX_STRING) invalid(field, `${value.slice(0, 32)}…`);
    if (typeof value === "number" && !Number.isFinite(value)) invalid(field, value);
  }
}

function invalid(field: string, value: unknown): never {
  throw new VmtreeError("invalid_argument", `invalid ${field}: ${JSON.stringify(String(value))}`);
}
