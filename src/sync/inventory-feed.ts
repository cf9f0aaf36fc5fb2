import type { ClientDuplexStream } from "@grpc/grpc-js";
import type { CameraChange } from "../gen/vmtree/v1/inventory.ts";
import type { Checkpoint, ParentServiceClient, SyncInventoryRequest, SyncInventoryResponse } from "../gen/vmtree/v1/link.ts";
import type { FeedBatch, UpFeed } from "../link/up-feed.ts";
import type { InventoryReplica } from "./inventory-replica.ts";
import type { UpstreamAcks } from "./upstream-acks.ts";

/**
 * Inventory changes going up one link session: for each origin held here, everything
 * after the checkpoint the parent reported at hello, then new changes as they are written.
 */
export class InventoryFeed implements UpFeed<SyncInventoryRequest, SyncInventoryResponse> {
  readonly name = "inventory";
  readonly source: InventoryReplica;
  readonly #acks: UpstreamAcks;
  readonly #fromParent: Map<string, Checkpoint>;
  readonly #cursors = new Map<string, Checkpoint>();
  /** Changes acknowledged in this session. */
  sent = 0;

  constructor(replica: InventoryReplica, acks: UpstreamAcks, parentCheckpoints: readonly Checkpoint[]) {
    this.source = replica;
    this.#acks = acks;
    this.#fromParent = new Map(parentCheckpoints.map((c) => [c.origin, c]));
  }

  open(client: ParentServiceClient): ClientDuplexStream<SyncInventoryRequest, SyncInventoryResponse> {
    return client.syncInventory();
  }

  /**
   * The epoch of each origin is announced when its cursor starts, so that the parent
   * drops an old incarnation even when the new one has no changes yet.
   */
  async next(limit: number): Promise<FeedBatch<SyncInventoryRequest> | undefined> {
    const changes: CameraChange[] = [];
    const newEpochs: Checkpoint[] = [];
    for (const local of await this.source.origins()) {
      if (changes.length >= limit) break;
      let cursor = this.#cursors.get(local.origin);
      if (!cursor || cursor.epoch !== local.epoch) {
        const parent = this.#fromParent.get(local.origin);
        // The parent already knows a newer incarnation of this origin: what we hold is stale.
        if (parent && parent.epoch > local.epoch) continue;
        // Announced whenever a cursor starts, since the parent may have received an older
        // epoch earlier in this very session; announcing a known epoch changes nothing.
        if (!parent || parent.epoch < local.epoch) newEpochs.push({ origin: local.origin, epoch: local.epoch, seq: 0 });
        cursor = { origin: local.origin, epoch: local.epoch, seq: parent?.epoch === local.epoch ? parent.seq : 0 };
        this.#cursors.set(local.origin, cursor);
      }
      const batch = await this.source.changesAfter(local.origin, local.epoch, cursor.seq, limit - changes.length);
      const last = batch.at(-1);
      if (last) cursor.seq = last.seq;
      changes.push(...batch);
    }
    if (changes.length === 0 && newEpochs.length === 0) return undefined;
    return { request: { changes, new_epochs: newEpochs, pending: 0 }, count: changes.length };
  }

  async acknowledged(response: SyncInventoryResponse, count: number): Promise<void> {
    this.sent += count;
    await this.#acks.save(response.checkpoints);
  }
}
