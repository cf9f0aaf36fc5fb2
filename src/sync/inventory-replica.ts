import { EventEmitter } from "node:events";
import { VmtreeError } from "../errors.ts";
import type { Camera, CameraChange } from "../gen/vmtree/v1/inventory.ts";
import type { Checkpoint } from "../gen/vmtree/v1/link.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { delOp, putOp, type BatchOp, type NodeStore } from "../store/node-store.ts";
import { stripCredentials } from "../inventory/strip-credentials.ts";
import { SerialQueue } from "../util/serial-queue.ts";

/** The stored state of one camera of one origin; `camera` is null for a tombstone. */
interface CameraRecord {
  epoch: number;
  seq: number;
  camera: Camera | null;
}

/** One entry of an origin's by-sequence index. */
interface IndexEntry {
  camera_id: string;
  camera: Camera | null;
}

/** Counts of what an import did. */
export interface ImportCounts {
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
}

/** A camera of this node or its subtree, with the site that owns it. */
export interface SiteCamera {
  site: string;
  camera: Camera;
}

const SEQ_DIGITS = 16;
const recordKey = (origin: string, cameraId: string) => `${origin}|${cameraId}`;
const indexKey = (origin: string, seq: number) => `${origin}|${String(seq).padStart(SEQ_DIGITS, "0")}`;
/** Bounds of all keys of one origin: `|` sorts after every character a site id may hold. */
const originRange = (origin: string) => ({ gt: `${origin}|`, lt: `${origin}}` });

/**
 * The inventory a node holds: its own cameras and a replica of its subtree's, each
 * record stamped with its origin site, epoch and per-origin sequence.
 *
 * Besides the records, each origin has a by-sequence index holding only the latest
 * change of each camera; "what changed after checkpoint N" is a range scan of it,
 * and a parent that has seen nothing gets the whole current state from the same scan.
 * Records, index and checkpoint of one change are written in one atomic batch, so a
 * crash never leaves a checkpoint ahead of the data it covers.
 *
 * Emits `change` after every write that added entries to some origin's index or
 * started a new epoch.
 */
export class InventoryReplica extends EventEmitter<{ change: [] }> {
  readonly #store: NodeStore;
  readonly #records;
  readonly #index;
  readonly #checkpoints;
  readonly #writes = new SerialQueue();

  constructor(store: NodeStore) {
    super();
    this.#store = store;
    this.#records = store.section<CameraRecord>("inv-record");
    this.#index = store.section<IndexEntry>("inv-seq");
    this.#checkpoints = store.section<Checkpoint>("inv-checkpoint");
  }

  /**
   * Makes `cameras` the complete inventory of `origin` (this node's own site):
   * new cameras are added, changed ones updated and missing ones deleted as
   * tombstones, each change under the next sequence number of `epoch`. Once `signal`
   * is aborted an import not yet written rejects with `unavailable` and writes nothing.
   */
  importOwn(origin: string, epoch: number, cameras: readonly Camera[], options: { signal?: AbortSignal } = {}): Promise<ImportCounts> {
    return this.#writes.run(async () => {
      const current = new Map<string, CameraRecord>();
      for await (const [key, record] of this.#records.iterator(originRange(origin))) {
        current.set(key.slice(origin.length + 1), record);
      }
      const head = await this.#checkpoints.get(origin);
      let seq = head?.epoch === epoch ? head.seq : 0;
      const counts: ImportCounts = { added: 0, changed: 0, removed: 0, unchanged: 0 };
      const ops: BatchOp[] = [];
      const write = (cameraId: string, camera: Camera | null, previous: CameraRecord | undefined) => {
        seq += 1;
        if (previous) ops.push(delOp(this.#index, indexKey(origin, previous.seq)));
        ops.push(putOp(this.#records, recordKey(origin, cameraId), { epoch, seq, camera }));
        ops.push(putOp(this.#index, indexKey(origin, seq), { camera_id: cameraId, camera }));
      };
      const incoming = new Set<string>();
      for (const camera of cameras) {
        incoming.add(camera.camera_id);
        const previous = current.get(camera.camera_id);
        if (!previous?.camera) {
          counts.added += 1;
          write(camera.camera_id, camera, previous);
        } else if (!sameCamera(previous.camera, camera)) {
          counts.changed += 1;
          write(camera.camera_id, camera, previous);
        } else {
          counts.unchanged += 1;
        }
      }
      for (const [cameraId, previous] of current) {
        if (previous.camera && !incoming.has(cameraId)) {
          counts.removed += 1;
          write(cameraId, null, previous);
        }
      }
      if (ops.length > 0) {
        ops.push(putOp(this.#checkpoints, origin, { origin, epoch, seq }));
        // The last moment to give up: a caller told the import failed must find nothing applied.
        if (options.signal?.aborted) {
          throw new VmtreeError("unavailable", "the node is stopping; the import was not applied; run it again once the node is back");
        }
        await this.#store.db.batch(ops, { sync: true });
        this.emit("change");
      }
      return counts;
    });
  }

  /**
   * Applies changes received from a child, idempotently: a change at or below the
   * origin's checkpoint is skipped, a change from an older epoch is ignored, and the
   * first change of a newer epoch drops everything held for that origin first.
   * Resolves, once the batch is durable, with the checkpoints of the origins it touched.
   */
  applyChanges(changes: readonly CameraChange[]): Promise<{ checkpoints: Checkpoint[]; applied: number }> {
    return this.#writes.run(async () => {
      const checkpoints = new Map<string, Checkpoint>();
      const records = new Map<string, CameraRecord | undefined>();
      let ops: BatchOp[] = [];
      let applied = 0;
      for (const change of changes) {
        let checkpoint = checkpoints.get(change.origin) ?? (await this.#checkpoints.get(change.origin));
        if (checkpoint && change.epoch < checkpoint.epoch) continue;
        if (!checkpoint || change.epoch > checkpoint.epoch) {
          // What this batch queued for the older epoch goes too, not only what is on disk.
          const prefix = `${change.origin}|`;
          ops = ops.filter((op) => !op.key.startsWith(prefix));
          ops.push(...(await this.#dropOriginOps(change.origin)));
          for (const key of records.keys()) if (key.startsWith(prefix)) records.set(key, undefined);
          checkpoint = { origin: change.origin, epoch: change.epoch, seq: 0 };
        }
        checkpoints.set(change.origin, checkpoint);
        if (change.seq <= checkpoint.seq) continue;
        const key = recordKey(change.origin, change.camera_id);
        const previous = records.has(key) ? records.get(key) : await this.#records.get(key);
        if (previous && previous.epoch === change.epoch) {
          ops.push(delOp(this.#index, indexKey(change.origin, previous.seq)));
        }
        const camera = change.camera ? sanitize(change.camera) : null;
        const record = { epoch: change.epoch, seq: change.seq, camera };
        records.set(key, record);
        ops.push(putOp(this.#records, key, record));
        ops.push(putOp(this.#index, indexKey(change.origin, change.seq), { camera_id: change.camera_id, camera }));
        checkpoint.seq = change.seq;
        applied += 1;
      }
      for (const checkpoint of checkpoints.values()) ops.push(putOp(this.#checkpoints, checkpoint.origin, checkpoint));
      if (ops.length > 0) await this.#store.db.batch(ops, { sync: true });
      if (applied > 0) this.emit("change");
      return { checkpoints: [...checkpoints.values()], applied };
    });
  }

  /**
   * Starts a new epoch for `origin` if `epoch` is newer than the one held, dropping
   * what was held, so that a wiped and re-enrolled site is resynchronised from zero.
   * Resolves true when it dropped anything.
   */
  resetIfNewerEpoch(origin: string, epoch: number): Promise<boolean> {
    return this.#writes.run(async () => {
      const checkpoint = await this.#checkpoints.get(origin);
      if (!checkpoint || checkpoint.epoch >= epoch) return false;
      const ops = await this.#dropOriginOps(origin);
      ops.push(putOp(this.#checkpoints, origin, { origin, epoch, seq: 0 }));
      await this.#store.db.batch(ops, { sync: true });
      // Relays above must learn of the new epoch too, even before it has changes.
      this.emit("change");
      return true;
    });
  }

  /** The checkpoints held for every origin in the subtree of `site` (the site included). */
  async checkpointsIn(site: string): Promise<Checkpoint[]> {
    const result: Checkpoint[] = [];
    for await (const checkpoint of this.#checkpoints.values()) {
      if (isInSubtree(checkpoint.origin, site)) result.push(checkpoint);
    }
    return result;
  }

  /**
   * Up to `limit` changes of `origin` with a sequence above `afterSeq`, in sequence
   * order, with stream URLs stripped of credentials.
   */
  async changesAfter(origin: string, epoch: number, afterSeq: number, limit: number): Promise<CameraChange[]> {
    const changes: CameraChange[] = [];
    const range = { gt: indexKey(origin, afterSeq), lt: `${origin}}`, limit };
    for await (const [key, entry] of this.#index.iterator(range)) {
      const seq = Number(key.slice(origin.length + 1));
      const camera = entry.camera ? sanitize(entry.camera) : undefined;
      changes.push({ origin, epoch, seq, camera_id: entry.camera_id, camera });
    }
    return changes;
  }

  /** How many index entries of `origin` lie above `afterSeq`. */
  async countAfter(origin: string, afterSeq: number): Promise<number> {
    let count = 0;
    for await (const _key of this.#index.keys({ gt: indexKey(origin, afterSeq), lt: `${origin}}` })) count += 1;
    return count;
  }

  /**
   * Lists live cameras (tombstones left out), by site then camera id. With `site`,
   * only that site and its subtree. Stream URLs never carry credentials here.
   */
  async list(site?: string): Promise<SiteCamera[]> {
    const result: SiteCamera[] = [];
    for await (const [key, record] of this.#records.iterator()) {
      const origin = key.slice(0, key.indexOf("|"));
      if (!record.camera || (site !== undefined && !isInSubtree(origin, site))) continue;
      result.push({ site: origin, camera: sanitize(record.camera) });
    }
    return result.sort((a, b) => compare(a.site, b.site) || compare(a.camera.camera_id, b.camera.camera_id));
  }

  /** One live camera of `site`, as `list` shows it; undefined when there is none. */
  async camera(site: string, cameraId: string): Promise<Camera | undefined> {
    const record = await this.#records.get(recordKey(site, cameraId));
    return record?.camera ? sanitize(record.camera) : undefined;
  }

  /** Every origin this node holds data for, with its checkpoint. */
  async origins(): Promise<Checkpoint[]> {
    return this.#checkpoints.values().all();
  }

  async #dropOriginOps(origin: string): Promise<BatchOp[]> {
    const ops: BatchOp[] = [];
    for await (const key of this.#records.keys(originRange(origin))) ops.push(delOp(this.#records, key));
    for await (const key of this.#index.keys(originRange(origin))) ops.push(delOp(this.#index, key));
    return ops;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sanitize(camera: Camera): Camera {
  return { ...camera, stream_url: stripCredentials(camera.stream_url) };
}

function sameCamera(a: Camera, b: Camera): boolean {
  return JSON.stringify(a, Object.keys(a).sort()) === JSON.stringify(b, Object.keys(b).sort());
}

