import { EventEmitter } from "node:events";
import type { PolicyApplied, PolicyDocument, PolicySet, PolicyVersion } from "../gen/vmtree/v1/policy.ts";
import { VmtreeError } from "../errors.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { putOp, type NodeStore } from "../store/node-store.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { policySetHash, validateReceivedSet } from "./policy-set.ts";
import { PolicyEngine } from "./policy-engine.ts";

/** A policy set as this node holds it. */
export interface HeldSet {
  set: PolicySet;
  /** When this node stored it, by its own clock. */
  receivedMs: number;
}

const SYNCED_KEY = "synced";

/**
 * The policy sets a node enforces: one per author, the ancestors' as received from the
 * parent and the node's own, each only in its latest version (versions only grow; an
 * author withdraws rules by applying a set without them). Beside them, what every node
 * of the subtree reported it applied, and until when this node knew it held its
 * parent's latest sets.
 *
 * The sets are few and small and every decision reads them, so they are kept in memory
 * once loaded, with the engine built from them; writes replace both.
 *
 * Emits `sets` after the sets changed and `applied` with the records that changed.
 */
export class PolicyStore extends EventEmitter<{ sets: []; applied: [PolicyApplied[]] }> {
  readonly #store: NodeStore;
  readonly #site: string;
  readonly #sets;
  readonly #applied;
  readonly #state;
  readonly #writes = new SerialQueue();
  #held: HeldSet[] | undefined;
  #engine: PolicyEngine | undefined;

  constructor(store: NodeStore, site: string) {
    super();
    this.#store = store;
    this.#site = site;
    this.#sets = store.section<HeldSet>("policy-set");
    this.#applied = store.section<PolicyApplied>("policy-applied");
    this.#state = store.section<number>("policy-state");
  }

  /** The sets held, root first, this node's own last. */
  async sets(): Promise<HeldSet[]> {
    this.#held ??= sortRootFirst(await this.#sets.values().all());
    return this.#held;
  }

  /** The engine deciding from the sets held. */
  async engine(): Promise<PolicyEngine> {
    this.#engine ??= new PolicyEngine((await this.sets()).map((held) => held.set));
    return this.#engine;
  }

  /** The version held of every author's set, root first. */
  async versions(): Promise<PolicyVersion[]> {
    return (await this.sets()).map(({ set }) => ({ author: set.author, version: set.version }));
  }

  /** This node's own set, if it ever applied one. */
  async own(): Promise<PolicySet | undefined> {
    return (await this.sets()).find((held) => held.set.author === this.#site)?.set;
  }

  /**
   * Stores `document` as the next version of this node's own set, unless `unchanged`
   * says it equals the one in force. The check and the write run under one lock, so two
   * applies at once make two versions, never one version twice.
   */
  applyOwn(document: PolicyDocument, actor: string, unchanged: (previous: PolicySet) => boolean): Promise<{ set: PolicySet; previous: PolicySet | undefined; changed: boolean }> {
    return this.#writes.run(async () => {
      const previous = await this.own();
      if (previous && unchanged(previous)) return { set: previous, previous, changed: false };
      const version = (previous?.version ?? 0) + 1;
      const set: PolicySet = {
        author: this.#site,
        version,
        created_ms: Date.now(),
        created_by: actor,
        document,
        sha256: policySetHash(this.#site, version, document),
      };
      await this.#write([set]);
      return { set, previous, changed: true };
    });
  }

  /**
   * Stores the sets received from the parent that are newer than those held, each checked
   * first (a bad one refuses the whole message and nothing is stored). Resolves with the
   * sets stored.
   */
  storeReceived(sets: readonly PolicySet[]): Promise<PolicySet[]> {
    for (const set of sets) validateReceivedSet(set, this.#site);
    return this.#writes.run(async () => {
      const held = new Map((await this.versions()).map((v) => [v.author, v.version]));
      const newer = sets.filter((set) => set.version > (held.get(set.author) ?? 0));
      if (newer.length > 0) await this.#write(newer);
      return newer;
    });
  }

  /**
   * Records what nodes of the subtree applied, as reported by the child whose subtree
   * holds them; a report about a node outside `childSite`'s subtree is refused whole.
   * Older reports than those held are ignored.
   */
  recordApplied(childSite: string, reports: readonly PolicyApplied[]): Promise<void> {
    for (const report of reports) {
      if (!isInSubtree(report.site, childSite)) {
        throw new VmtreeError("permission_denied", `site ${childSite} reported the policies of ${report.site}, outside its subtree`);
      }
    }
    return this.#writes.run(async () => {
      const changed: PolicyApplied[] = [];
      for (const report of reports) {
        const held = await this.#applied.get(report.site);
        if (held && held.applied_ms > report.applied_ms) continue;
        if (held && sameVersions(held.versions, report.versions) && held.applied_ms === report.applied_ms) continue;
        changed.push(report);
      }
      if (changed.length === 0) return;
      await this.#store.db.batch(changed.map((report) => putOp(this.#applied, report.site, report)), { sync: true });
      this.emit("applied", changed);
    });
  }

  /** What every node of the subtree, this one included, reported it applied. */
  applied(): Promise<PolicyApplied[]> {
    return this.#applied.values().all();
  }

  /** Unix milliseconds until which this node knew it held its parent's latest sets; 0 if never. */
  async syncedMs(): Promise<number> {
    return (await this.#state.get(SYNCED_KEY)) ?? 0;
  }

  /** Records that this node held its parent's latest sets at `ms`. */
  async markSynced(ms: number): Promise<void> {
    await this.#state.put(SYNCED_KEY, ms);
  }

  /** Writes sets and this node's own applied record in one batch, then drops the caches. */
  async #write(sets: readonly PolicySet[]): Promise<void> {
    const now = Date.now();
    const byAuthor = new Map((await this.sets()).map((held) => [held.set.author, held]));
    for (const set of sets) byAuthor.set(set.author, { set, receivedMs: now });
    const held = sortRootFirst([...byAuthor.values()]);
    const own: PolicyApplied = {
      site: this.#site,
      versions: held.map(({ set }) => ({ author: set.author, version: set.version })),
      applied_ms: now,
    };
    const ops = [...sets.map((set) => putOp(this.#sets, set.author, byAuthor.get(set.author))), putOp(this.#applied, this.#site, own)];
    await this.#store.db.batch(ops, { sync: true });
    this.#held = held;
    this.#engine = undefined;
    this.emit("sets");
    this.emit("applied", [own]);
  }
}

/** Ancestors before descendants: an author's depth is its number of segments. */
function sortRootFirst(held: HeldSet[]): HeldSet[] {
  return held.sort((a, b) => a.set.author.split(".").length - b.set.author.split(".").length);
}

function sameVersions(a: readonly PolicyVersion[], b: readonly PolicyVersion[]): boolean {
  return a.length === b.length && a.every((v, i) => v.author === b[i]?.author && v.version === b[i]?.version);
}
