import type { NodeStore } from "../store/node-store.ts";

/** What a parent knows about the link of one child. */
export interface ChildLinkState {
  site: string;
  state: "connected" | "disconnected";
  /** Unix ms of the last change of state; 0 when never seen. */
  sinceMs: number;
  /** Unix ms of the last batch stored from this child; 0 when never. */
  lastSyncMs: number;
  /** Items the child said it still had to send, as of its last message. */
  pending: number;
  /** Inventory changes received and stored since this node started. */
  received: number;
  /** Audit entries received and stored since this node started. */
  auditReceived: number;
}

type Persisted = Pick<ChildLinkState, "site" | "sinceMs" | "lastSyncMs">;

/**
 * Link state of every child, for `vmtree status`. A child is connected while any of
 * its streams is open. Connects and disconnects are rare, so their times are
 * persisted: after a restart a parent still says since when a child has been away.
 */
export class ChildLinks {
  readonly #states = new Map<string, ChildLinkState>();
  readonly #section;
  readonly #streams = new Map<string, number>();

  constructor(store: NodeStore) {
    this.#section = store.section<Persisted>("link-child");
  }

  /** Loads the persisted times of `sites` (the enrolled children). */
  async load(sites: readonly string[]): Promise<void> {
    for (const site of sites) {
      const saved = await this.#section.get(site);
      this.#states.set(site, { ...blank(site), sinceMs: saved?.sinceMs ?? 0, lastSyncMs: saved?.lastSyncMs ?? 0 });
    }
  }

  /**
   * Marks a stream of `site` open. `connected` is true when it is the child's first open
   * stream; `close()` resolves true when it closed the child's last one.
   */
  open(site: string): { connected: boolean; close: () => Promise<boolean> } {
    const state = this.#get(site);
    const streams = (this.#streams.get(site) ?? 0) + 1;
    this.#streams.set(site, streams);
    const connected = streams === 1;
    if (connected) {
      Object.assign(state, { state: "connected", sinceMs: Date.now() });
      void this.#persist(state);
    }
    let closed = false;
    const close = async () => {
      if (closed) return false;
      closed = true;
      const left = (this.#streams.get(site) ?? 1) - 1;
      this.#streams.set(site, left);
      if (left > 0) return false;
      Object.assign(state, { state: "disconnected", sinceMs: Date.now() });
      await this.#persist(state);
      return true;
    };
    return { connected, close };
  }

  /** Records a stored batch. */
  synced(site: string, stored: { inventory?: number; audit?: number }, pending: number): void {
    const state = this.#get(site);
    state.lastSyncMs = Date.now();
    state.received += stored.inventory ?? 0;
    state.auditReceived += stored.audit ?? 0;
    state.pending = pending;
  }

  /** Every known child, by site id. */
  list(): ChildLinkState[] {
    return [...this.#states.values()].sort((a, b) => (a.site < b.site ? -1 : 1)).map((state) => ({ ...state }));
  }

  #get(site: string): ChildLinkState {
    let state = this.#states.get(site);
    if (!state) {
      state = blank(site);
      this.#states.set(site, state);
    }
    return state;
  }

  async #persist(state: ChildLinkState): Promise<void> {
    await this.#section.put(state.site, { site: state.site, sinceMs: state.sinceMs, lastSyncMs: state.lastSyncMs });
  }
}

function blank(site: string): ChildLinkState {
  return { site, state: "disconnected", sinceMs: 0, lastSyncMs: 0, pending: 0, received: 0, auditReceived: 0 };
}
