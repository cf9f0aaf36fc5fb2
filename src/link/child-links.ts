import type { NodeStore } from "../store/node-store.ts";

/** What a parent knows about the link of one child. */
export interface ChildLinkState {
  site: string;
  state: "connected" | "disconnected";
  /** Unix ms of the last change of state; 0 when never seen. */
  sinceMs: number;
  /** Unix ms of the last batch stored from this child; 0 when never. */
  lastSyncMs: number;
  /** Changes the child said it still had to send, as of its last message. */
  pending: number;
  /** Changes received and stored since this node started. */
  received: number;
}

type Persisted = Pick<ChildLinkState, "site" | "sinceMs" | "lastSyncMs">;

/**
 * Link state of every child, for `vmtree status`. Connects and disconnects are rare,
 * so their times are persisted: after a restart a parent still says since when a
 * child has been away.
 */
export class ChildLinks {
  readonly #states = new Map<string, ChildLinkState>();
  readonly #section;
  readonly #sessions = new Map<string, number>();

  constructor(store: NodeStore) {
    this.#section = store.section<Persisted>("link-child");
  }

  /** Loads the persisted times of `sites` (the enrolled children). */
  async load(sites: readonly string[]): Promise<void> {
    for (const site of sites) {
      const saved = await this.#section.get(site);
      this.#states.set(site, {
        site,
        state: "disconnected",
        sinceMs: saved?.sinceMs ?? 0,
        lastSyncMs: saved?.lastSyncMs ?? 0,
        pending: 0,
        received: 0,
      });
    }
  }

  /** Marks a sync session of `site` open; returns a function that marks it closed. */
  open(site: string, pending: number): () => Promise<void> {
    const state = this.#get(site);
    const sessions = (this.#sessions.get(site) ?? 0) + 1;
    this.#sessions.set(site, sessions);
    Object.assign(state, { state: "connected", sinceMs: Date.now(), pending });
    void this.#persist(state);
    let closed = false;
    return async () => {
      if (closed) return;
      closed = true;
      const left = (this.#sessions.get(site) ?? 1) - 1;
      this.#sessions.set(site, left);
      // A child that reconnects before its old stream noticed the cut has two sessions for a moment.
      if (left > 0) return;
      Object.assign(state, { state: "disconnected", sinceMs: Date.now() });
      await this.#persist(state);
    };
  }

  /** Records a stored batch. */
  synced(site: string, applied: number, pending: number): void {
    const state = this.#get(site);
    state.lastSyncMs = Date.now();
    state.received += applied;
    state.pending = pending;
  }

  /** Every known child, by site id. */
  list(): ChildLinkState[] {
    return [...this.#states.values()].sort((a, b) => (a.site < b.site ? -1 : 1)).map((state) => ({ ...state }));
  }

  #get(site: string): ChildLinkState {
    let state = this.#states.get(site);
    if (!state) {
      state = { site, state: "disconnected", sinceMs: 0, lastSyncMs: 0, pending: 0, received: 0 };
      this.#states.set(site, state);
    }
    return state;
  }

  async #persist(state: ChildLinkState): Promise<void> {
    await this.#section.put(state.site, { site: state.site, sinceMs: state.sinceMs, lastSyncMs: state.lastSyncMs });
  }
}
