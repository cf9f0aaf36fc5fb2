import type { Checkpoint } from "../gen/vmtree/v1/link.ts";
import type { NodeStore } from "../store/node-store.ts";
import type { InventoryReplica } from "./inventory-replica.ts";

/**
 * The checkpoints the parent last acknowledged, kept by the child so that it can say
 * how much is waiting while the link is down. The parent's own answer at each hello
 * stays authoritative for what is actually sent.
 */
export class UpstreamAcks {
  readonly #section;
  readonly #replica: InventoryReplica;

  constructor(store: NodeStore, replica: InventoryReplica) {
    this.#section = store.section<Checkpoint>("uplink-acked");
    this.#replica = replica;
  }

  /** Records checkpoints the parent acknowledged. */
  async save(checkpoints: readonly Checkpoint[]): Promise<void> {
    if (checkpoints.length === 0) return;
    await this.#section.batch(checkpoints.map((c) => ({ type: "put" as const, key: c.origin, value: c })));
  }

  /** Changes held here above the last acknowledged checkpoint of their origin. */
  async pending(): Promise<number> {
    const acked = new Map((await this.#section.values().all()).map((c) => [c.origin, c]));
    let total = 0;
    for (const origin of await this.#replica.origins()) {
      const ack = acked.get(origin.origin);
      if (ack && ack.epoch > origin.epoch) continue;
      total += await this.#replica.countAfter(origin.origin, ack?.epoch === origin.epoch ? ack.seq : 0);
    }
    return total;
  }
}
