import { EventEmitter } from "node:events";
import type { PolicyApplied, PolicyDocument, PolicySet, PolicyVersion } from "../gen/vmtree/v1/policy.ts";
import { VmtreeError } from "../errors.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { putOp, type NodeStore } from "../store/node-store.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { MAX_POLICY_VERSION, policySetHash, validateReceivedSet } from "./policy-set.ts";
import { signatureProblem, signPolicySet, type PolicySigner } from "./policy-signature.ts";
import { PolicyEngine } from "./policy-engine.ts";

/** How far above the version held here a reported version may lie and still count. */
const MAX_VERSION_GAP = 1_000;

/** What a store checks sets against and signs its own with. */
export interface PolicyTrust {
  /** The tree's root CA: every set's signer chains to it. */
  rootCaPem: string;
  signer: PolicySigner;
}

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
  /** Authors whose stored set failed its check when loaded, with why. */
  #damaged = new Map<string, string>();
  #engine: PolicyEngine | undefined;

  readonly #trust: PolicyTrust;

  constructor(store: NodeStore, site: string, trust: PolicyTrust) {
    super();
    this.#trust = trust;
    // One listener per child session: a region may have hundreds.
    this.setMaxListeners(0);
    this.#store = store;
    this.#site = site;
    this.#sets = store.section<HeldSet>("policy-set");
    this.#applied = store.section<PolicyApplied>("policy-applied");
    this.#state = store.section<number>("policy-state");
  }

  /** The sets held, root first, this node's own last. */
  async sets(): Promise<HeldSet[]> {
    if (!this.#held) {
      const held = sortRootFirst((await this.#sets.values().all()).map(withBytes));
      this.#damaged = new Map(held.flatMap(({ set }) => {
        const problem = this.#problemOf(set);
        return problem === undefined ? [] : [[set.author, problem] as const];
      }));
      this.#held = held;
    }
    return this.#held;
  }

  /**
   * Sets whose stored copy fails its check (edited or damaged on disk), by author. While
   * any is, every request is denied: enforcing the rest could lift an ancestor's deny.
   */
  async damaged(): Promise<ReadonlyMap<string, string>> {
    await this.sets();
    return this.#damaged;
  }

  /** Why a stored set may not be enforced, or undefined when it passes the checks a received one does. */
  #problemOf(set: PolicySet): string | undefined {
    try {
      if (set.author !== this.#site) validateReceivedSet(set, this.#site);
      else if (!set.document || set.sha256 !== policySetHash(set.author, set.version, set.document)) return `the stored sha256 does not match its content`;
    } catch (error) {
      return VmtreeError.from(error).rawMessage;
    }
    return this.#signatureProblem(set);
  }

  #signatureProblem(set: PolicySet): string | undefined {
    const problem = signatureProblem(set, this.#trust.rootCaPem);
    return problem === undefined ? undefined : `policy set of ${set.author} version ${set.version}: ${problem}`;
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

  /** The versions to tell the parent this node holds: a damaged set counts as not held, so it is sent again. */
  async intactVersions(): Promise<PolicyVersion[]> {
    const damaged = await this.damaged();
    return (await this.versions()).filter((v) => !damaged.has(v.author));
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
      if (previous && !this.#damaged.has(this.#site) && unchanged(previous)) return { set: previous, previous, changed: false };
      const held = previous?.version ?? 0;
      const version = Math.max(held, await this.#highestReported(this.#site, held)) + 1;
      if (version > MAX_POLICY_VERSION) throw new VmtreeError("failed_precondition", `${this.#site}'s policy set is at version ${held}, the last one there can be`);
      const set = signPolicySet({
        author: this.#site,
        version,
        created_ms: Date.now(),
        created_by: actor,
        document,
        sha256: policySetHash(this.#site, version, document),
        signature: Buffer.alloc(0),
        signer_chain_pem: "",
      }, this.#trust.signer);
      await this.#write([set]);
      return { set, previous, changed: true };
    });
  }

  /**
   * Stores the sets received from the parent that are newer than those held (or replace a
   * damaged copy), each checked first; a set that fails its check is not stored and is
   * returned with the reason, so that the caller reports it and the link carries on.
   */
  storeReceived(sets: readonly PolicySet[]): Promise<{ stored: PolicySet[]; refused: { set: PolicySet; reason: string }[] }> {
    const refused: { set: PolicySet; reason: string }[] = [];
    const valid = sets.filter((set) => {
      let reason: string | undefined;
      try {
        validateReceivedSet(set, this.#site);
        reason = this.#signatureProblem(set);
      } catch (error) {
        reason = VmtreeError.from(error).rawMessage;
      }
      if (reason !== undefined) refused.push({ set, reason });
      return reason === undefined;
    });
    return this.#writes.run(async () => {
      const held = new Map((await this.intactVersions()).map((v) => [v.author, v.version]));
      const stored = valid.filter((set) => set.version > (held.get(set.author) ?? 0));
      if (stored.length > 0) await this.#write(stored);
      return { stored, refused };
    });
  }

  /**
   * The highest version of `author`'s set any node of the subtree reported it applied, as far
   * as it is credible: a report cannot be proven, so one more than MAX_VERSION_GAP above the
   * version held here is ignored (a node restored from backup is a few versions behind, not
   * millions), and no report can push the numbering out of its range.
   */
  async #highestReported(author: string, held: number): Promise<number> {
    let highest = 0;
    for (const report of await this.applied()) {
      for (const v of report.versions) {
        if (v.author === author && v.version > highest && v.version <= held + MAX_VERSION_GAP) highest = v.version;
      }
    }
    return highest;
  }

  /**
   * Records what nodes of the subtree applied, as reported by the child whose subtree
   * holds them; a report about a node outside `childSite`'s subtree is refused whole.
   * Older reports than those held are ignored.
   */
  async recordApplied(childSite: string, reports: readonly PolicyApplied[]): Promise<void> {
    for (const report of reports) {
      if (!isInSubtree(report.site, childSite)) {
        throw new VmtreeError("permission_denied", `site ${childSite} reported the policies of ${report.site}, outside its subtree`);
      }
    }
    await this.#writes.run(async () => {
      // Reports of one node arrive in order over one path, so the last one is the latest;
      // the reporting node's clock does not decide.
      const changed: PolicyApplied[] = [];
      for (const report of reports) {
        const held = await this.#applied.get(report.site);
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
    for (const set of sets) this.#damaged.delete(set.author);
    this.#engine = undefined;
    this.emit("sets");
    this.emit("applied", [own]);
  }
}

/**
 * A held set as read back from its JSON record, with its signature as bytes again: JSON keeps
 * a Buffer as `{ type, data }`, which the protobuf encoder cannot write.
 */
function withBytes(held: HeldSet): HeldSet {
  const signature = held.set.signature as unknown as Uint8Array | { data?: number[] } | undefined;
  const bytes = signature instanceof Uint8Array ? Buffer.from(signature) : Buffer.from(signature?.data ?? []);
  return { ...held, set: { ...held.set, signature: bytes } };
}

/** Ancestors before descendants: an author's depth is its number of segments. */
function sortRootFirst(held: HeldSet[]): HeldSet[] {
  return held.sort((a, b) => a.set.author.split(".").length - b.set.author.split(".").length);
}

function sameVersions(a: readonly PolicyVersion[], b: readonly PolicyVersion[]): boolean {
  return a.length === b.length && a.every((v, i) => v.author === b[i]?.author && v.version === b[i]?.version);
}
