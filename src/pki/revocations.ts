import { EventEmitter } from "node:events";
import type { Revocation } from "../gen/vmtree/v1/link.ts";
import { putOp, type NodeStore } from "../store/node-store.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { isInSubtree } from "./site-id.ts";

/**
 * The revocations a node knows: each revokes a site and its whole subtree, that is every
 * enrolment of those sites made before it (a site enrolled again afterwards, with a new
 * invitation, is trusted again). A node holds the revocations made by it and its ancestors
 * that concern its subtree; they reach it down the policy stream.
 *
 * Emits `change` with the revocations that were new.
 */
export class Revocations extends EventEmitter<{ change: [Revocation[]] }> {
  readonly #store: NodeStore;
  readonly #section;
  readonly #writes = new SerialQueue();
  #held: Revocation[] | undefined;

  constructor(store: NodeStore) {
    super();
    // One listener per child session.
    this.setMaxListeners(0);
    this.#store = store;
    this.#section = store.section<Revocation>("revocation");
  }

  /** Every revocation held, by site. */
  async list(): Promise<Revocation[]> {
    this.#held ??= await this.#section.values().all();
    return this.#held;
  }

  /**
   * When `site` was last revoked, by itself or through an ancestor; undefined if never.
   * An enrolment of `site` made before that moment is revoked.
   */
  async revokedAt(site: string): Promise<Revocation | undefined> {
    let latest: Revocation | undefined;
    for (const revocation of await this.list()) {
      if (isInSubtree(site, revocation.site) && (!latest || revocation.revoked_ms > latest.revoked_ms)) latest = revocation;
    }
    return latest;
  }

  /** Stores the revocations that are new or later than those held for their site; resolves with those. */
  add(revocations: readonly Revocation[]): Promise<Revocation[]> {
    return this.#writes.run(async () => {
      const held = new Map((await this.list()).map((r) => [r.site, r]));
      const fresh = revocations.filter((r) => (held.get(r.site)?.revoked_ms ?? -1) < r.revoked_ms);
      if (fresh.length === 0) return [];
      await this.#store.db.batch(fresh.map((r) => putOp(this.#section, r.site, r)), { sync: true });
      for (const r of fresh) held.set(r.site, r);
      this.#held = [...held.values()];
      this.emit("change", fresh);
      return fresh;
    });
  }
}
