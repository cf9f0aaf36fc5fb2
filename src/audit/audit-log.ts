import { EventEmitter } from "node:events";
import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import { VmtreeError } from "../errors.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { delOp as del, putOp as put, type BatchOp, type NodeStore } from "../store/node-store.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { canonicalJson, GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import { checkChain, type ChainBreak, type StoredEntry } from "./chain.ts";

/** Something that happened on this node, as the caller describes it. */
export interface AuditEvent {
  actor: string;
  action: string;
  target: string;
  result: "ok" | "refused" | "failed";
  details?: Record<string, unknown>;
}

/** Why an origin's stream is no longer accepted, until an administrator resolves it. */
export interface Quarantine {
  origin: string;
  epoch: number;
  seq: number;
  /** Hash of the refused entry: only this very entry is accepted after a resolution. */
  hash: string;
  reason: string;
  atMs: number;
}

/** A point where a chain legitimately restarts: entries before it were pruned, or an administrator accepted a break. */
export interface ChainBase {
  origin: string;
  epoch: number;
  seq: number;
  prev_hash: string;
  why: "pruned" | "resolved";
  /**
   * Only for a resolved base whose entry was accepted although its hash does not match its
   * content (an edited entry an administrator accepted): the entry's claimed hash, which the
   * chain continues from, and the hash of its content, so that only this very entry passes.
   */
  hash?: string;
  contentHash?: string;
}

/** What `ingest` did with a batch. */
export interface IngestResult {
  stored: number;
  heads: AuditHead[];
  /** Origins quarantined by this batch, or already quarantined. */
  quarantined: Quarantine[];
  /** Origins quarantined by this batch. */
  newlyQuarantined: Quarantine[];
}

/** The outcome of verifying one origin's chain in one epoch. */
export interface ChainReport {
  origin: string;
  epoch: number;
  entries: number;
  firstSeq: number;
  lastSeq: number;
  headHash: string;
  ok: boolean;
  badSeq?: number;
  reason?: string;
  quarantined?: string;
}

/** Filters of {@link AuditLog.list}. */
export interface AuditQuery {
  site?: string;
  sinceMs?: number;
  untilMs?: number;
  actor?: string;
  action?: string;
  limit?: number;
}

const EPOCH_DIGITS = 10;
const SEQ_DIGITS = 16;
const originBounds = (origin: string) => ({ gt: `${origin}|`, lt: `${origin}}` });
const entryKey = (origin: string, epoch: number, seq: number) =>
  `${origin}|${String(epoch).padStart(EPOCH_DIGITS, "0")}|${String(seq).padStart(SEQ_DIGITS, "0")}`;

/**
 * The audit log a node holds: its own hash-chained entries and those of its subtree,
 * verified as they arrive. Appending, ingesting, resolving and pruning are
 * serialized; every write is one atomic, synced LevelDB batch that also moves the
 * origin's head, so the head never runs ahead of the entries it covers.
 *
 * Emits `change` after every write that added entries.
 */
export class AuditLog extends EventEmitter<{ change: [] }> {
  readonly #store: NodeStore;
  readonly #site: string;
  readonly #epoch: number;
  readonly #entries;
  /** The entries as raw text: every read that must not throw on one bad value goes through {@link #read}. */
  readonly #texts;
  readonly #heads;
  readonly #quarantines;
  readonly #bases;
  readonly #anchors;
  /** When this node stored each relayed entry, by entry key: its own clock, not the origin's. */
  readonly #received;
  readonly #writes = new SerialQueue();
  /** Events waiting for the next grouped append, in call order. */
  readonly #waiting: { event: AuditEvent; resolve: (entry: AuditEntry) => void; reject: (reason: unknown) => void }[] = [];

  constructor(store: NodeStore, site: string, epoch: number) {
    super();
    this.#store = store;
    this.#site = site;
    this.#epoch = epoch;
    this.#entries = store.section<AuditEntry>("audit-entry");
    this.#texts = store.textSection("audit-entry");
    this.#heads = store.section<HeldHead>("audit-head");
    this.#quarantines = store.section<HeldQuarantine>("audit-quarantine");
    this.#bases = store.section<ChainBase>("audit-base");
    this.#anchors = store.section<AuditHead>("audit-anchor");
    this.#received = store.section<number>("audit-received");
  }

  /**
   * Appends an event of this node and resolves with the stored entry once it is durable.
   * Events appended while a write is under way are written together in the next batch:
   * one synced write for many callers (every decision of a busy site is audited).
   */
  append(event: AuditEvent): Promise<AuditEntry> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ event, resolve, reject });
      if (this.#waiting.length === 1) void this.#writes.run(() => this.#appendWaiting());
    });
  }

  async #appendWaiting(): Promise<void> {
    const group = this.#waiting.splice(0, MAX_GROUP_APPEND);
    if (this.#waiting.length > 0) void this.#writes.run(() => this.#appendWaiting());
    try {
      const entries = await this.#appendNow(group.map((waiting) => waiting.event));
      group.forEach((waiting, i) => waiting.resolve(entries[i]!));
    } catch (error) {
      for (const waiting of group) waiting.reject(error);
    }
  }

  /** Appends events in order, in one batch. */
  appendMany(events: readonly AuditEvent[], timeMs = Date.now()): Promise<AuditEntry[]> {
    return this.#writes.run(() => this.#appendNow(events, timeMs));
  }

  /** Appends without queueing; only for callers already inside `#writes`. */
  async #appendNow(events: readonly AuditEvent[], timeMs = Date.now()): Promise<AuditEntry[]> {
    const { entries, ops } = await this.#ownEntries(events, timeMs);
    await this.#store.db.batch(ops, { sync: true });
    this.emit("change");
    return entries;
  }

  /**
   * Builds this node's next entries and the batch operations that store them and move
   * its head, for callers that must write them atomically with other changes.
   */
  async #ownEntries(events: readonly AuditEvent[], timeMs = Date.now()): Promise<{ entries: AuditEntry[]; ops: BatchOp[] }> {
    const head = await this.#heads.get(this.#site);
    if (head && head.epoch > this.#epoch) {
      throw new VmtreeError(
        "failed_precondition",
        `the audit log already holds epoch ${head.epoch} of ${this.#site}, but this node is epoch ${this.#epoch} (node.json restored from an older backup?); not appending`,
      );
    }
    const held = head?.epoch === this.#epoch ? head : undefined;
    let previous: AuditHead = held ?? { origin: this.#site, epoch: this.#epoch, seq: 0, hash: GENESIS_HASH };
    // The head record is not hashed: an append never trusts it alone to know where the chain
    // ends. Entries stored past it (the record was lowered) are never overwritten; the new
    // entries follow the last one stored and the head record stays where it is, so that verify
    // still reports the entries after it. A head ahead of the stored entries (a deleted tail)
    // keeps its place: the gap stays visible instead of being refilled.
    const last = await this.#lastOwnStored();
    const headBehind = last !== undefined && last.seq > previous.seq;
    if (headBehind) previous = { origin: this.#site, epoch: this.#epoch, seq: last.seq, hash: last.hash };
    const entries: AuditEntry[] = [];
    for (const event of events) {
      const unhashed = {
        origin: this.#site,
        epoch: this.#epoch,
        seq: previous.seq + 1,
        time_ms: timeMs,
        actor: event.actor,
        action: event.action,
        target: event.target,
        result: event.result,
        details: canonicalJson(event.details ?? {}),
        prev_hash: previous.hash,
      };
      const entry = { ...unhashed, hash: hashEntry(unhashed) };
      entries.push(entry);
      previous = { origin: this.#site, epoch: this.#epoch, seq: entry.seq, hash: entry.hash };
    }
    const ops = entries.map((entry) => put(this.#entries, entryKey(entry.origin, entry.epoch, entry.seq), entry));
    if (!(headBehind && held)) ops.push(put(this.#heads, this.#site, previous));
    return { entries, ops };
  }

  /** Sequence and hash of the last entry of this node's epoch actually stored: one reverse step of an iterator. */
  async #lastOwnStored(): Promise<{ seq: number; hash: string } | undefined> {
    const epoch = String(this.#epoch).padStart(EPOCH_DIGITS, "0");
    for await (const stored of this.#read({ gt: `${this.#site}|${epoch}|`, lt: `${this.#site}|${epoch}}`, reverse: true, limit: 1 })) {
      // An unreadable last entry still holds its place; verify reports it, the chain goes on after it.
      return { seq: stored.seq, hash: stored.entry?.hash ?? GENESIS_HASH };
    }
    return undefined;
  }

  /**
   * Stores entries relayed from a child after checking each origin's chain: the next
   * sequence, the previous hash and the entry's own hash. The first violation puts the
   * origin in quarantine: nothing more from it is stored until `resolve`, and an alarm
   * entry is written on this node. Entries already held (a resend) are skipped. Beside each
   * stored entry goes this node's receipt time, outside the entry and its hash: retention
   * counts from it (see `prune`).
   *
   * `caller` names the child that sent the batch and the epoch it is enrolled with: an
   * entry of the child's own origin in any other epoch quarantines that origin (entries of
   * deeper origins were checked by the parents below).
   */
  ingest(entries: readonly AuditEntry[], actor: string, caller?: { origin: string; epoch: number }): Promise<IngestResult> {
    return this.#writes.run(async () => {
      const heads = new Map<string, HeldHead>();
      const staged = new Map<string, AuditEntry>();
      const quarantined = new Map<string, Quarantine>();
      const fresh: Quarantine[] = [];
      const notes: AuditEvent[] = [];
      const ops: BatchOp[] = [];
      let stored = 0;
      const receivedMs = Date.now();
      /** Per chain, the key of the last entry stored from this batch: where its receipt mark goes. */
      const receiptMarks = new Map<string, string>();
      const checked = new Set<string>();
      for (const entry of entries) {
        if (quarantined.has(entry.origin)) continue;
        if (!checked.has(entry.origin)) {
          checked.add(entry.origin);
          const existing = await this.#quarantines.get(entry.origin);
          if (existing) {
            quarantined.set(entry.origin, publicQuarantine(existing));
            continue;
          }
        }
        const key = entryKey(entry.origin, entry.epoch, entry.seq);
        const head = heads.get(entry.origin) ?? (await this.#heads.get(entry.origin));
        const verdict = caller && entry.origin === caller.origin && entry.epoch !== caller.epoch
          ? { seq: entry.seq, reason: `epoch ${entry.epoch} is not the enrolled epoch ${caller.epoch} of ${caller.origin}` }
          : await this.#judge(entry, head, async () => staged.get(key) ?? (await this.#entries.get(key)));
        if (verdict === "duplicate") continue;
        if (typeof verdict === "object") {
          const quarantine: Quarantine = { origin: entry.origin, epoch: entry.epoch, seq: entry.seq, hash: entry.hash, reason: verdict.reason, atMs: Date.now() };
          quarantined.set(entry.origin, quarantine);
          fresh.push(quarantine);
          // An edited entry is pinned by its content too: only this very entry is accepted after a resolution.
          const content = hashEntry(entry);
          ops.push(put(this.#quarantines, entry.origin, content === entry.hash ? quarantine : { ...quarantine, contentHash: content }));
          notes.push({ actor, action: "audit.quarantine", target: entry.origin, result: "refused", details: { epoch: entry.epoch, seq: entry.seq, reason: verdict.reason } });
          continue;
        }
        if (verdict === "reanchor") {
          // An accepted edited entry stays as it came; its base names its claimed and its content hash.
          const content = hashEntry(entry);
          const edited = content === entry.hash ? {} : { hash: entry.hash, contentHash: content };
          const base: ChainBase = { origin: entry.origin, epoch: entry.epoch, seq: entry.seq, prev_hash: entry.prev_hash, why: "resolved", ...edited };
          ops.push(put(this.#bases, key, base));
          const recorded = content === entry.hash ? {} : { hash: entry.hash, content_hash: content };
          notes.push({ actor, action: "audit.reanchor", target: entry.origin, result: "ok", details: { epoch: entry.epoch, seq: entry.seq, prev_hash: entry.prev_hash, ...recorded } });
        }
        if (head && entry.epoch > head.epoch) {
          // Where the old epoch ended, in this node's own chain: a later deletion of its tail shows.
          notes.push({ actor, action: "audit.epoch", target: entry.origin, result: "ok", details: { epoch: head.epoch, last_seq: head.seq, last_hash: head.hash } });
        }
        ops.push(put(this.#entries, key, entry));
        receiptMarks.set(`${entry.origin}|${entry.epoch}`, key);
        staged.set(key, entry);
        // An accepted break stays pending until the entry it names has come.
        const pending = verdict !== "reanchor" && head?.reanchorAt ? { reanchorAt: head.reanchorAt } : {};
        heads.set(entry.origin, { origin: entry.origin, epoch: entry.epoch, seq: entry.seq, hash: entry.hash, ...pending });
        stored += 1;
      }
      for (const head of heads.values()) ops.push(put(this.#heads, head.origin, head));
      for (const key of receiptMarks.values()) ops.push(put(this.#received, key, receivedMs));
      // Alarms and records of bases and epoch ends go in the same batch as what they describe.
      if (notes.length > 0) ops.push(...(await this.#ownEntries(notes)).ops);
      if (ops.length > 0) await this.#store.db.batch(ops, { sync: true });
      if (stored > 0 || notes.length > 0) this.emit("change");
      return { stored, heads: [...heads.values()].map(stripFlags), quarantined: [...quarantined.values()], newlyQuarantined: fresh };
    });
  }

  /**
   * "accept", "duplicate", "reanchor" (the break an administrator accepted) or the
   * chain break that quarantines the origin. `held` reads the entry already held at
   * the same position, staged in this batch or stored.
   */
  async #judge(entry: AuditEntry, head: HeldHead | undefined, held: () => Promise<AuditEntry | undefined>): Promise<"accept" | "duplicate" | "reanchor" | ChainBreak> {
    const at = (reason: string): ChainBreak => ({ seq: entry.seq, reason });
    const content = hashEntry(entry);
    const accepted = head?.reanchorAt;
    // The entry an administrator accepted, unchanged: when its quarantine was an edit, the very same edit.
    if (
      accepted && accepted.epoch === entry.epoch && accepted.seq === entry.seq && (accepted.hash === undefined || accepted.hash === entry.hash) &&
      (content === entry.hash ? accepted.contentHash === undefined : accepted.contentHash === content)
    ) {
      return "reanchor";
    }
    if (content !== entry.hash) return at(`entry ${entry.seq} was changed: its hash does not match its content`);
    if (!head || entry.epoch > head.epoch) {
      if (entry.seq !== 1) return at(`gap: epoch ${entry.epoch} must start at entry 1, got ${entry.seq}`);
      if (entry.prev_hash !== GENESIS_HASH) return at(`entry 1 of epoch ${entry.epoch} does not start a chain: its previous hash is not the genesis hash`);
      return "accept";
    }
    if (entry.epoch < head.epoch) return at(`reordered: entry of epoch ${entry.epoch} after epoch ${head.epoch} began`);
    if (entry.seq <= head.seq) {
      if ((await held())?.hash === entry.hash) return "duplicate";
      // After a resolved fork, what this node holds stays; the child's differing copy is skipped.
      if (accepted && accepted.seq > head.seq) return "duplicate";
      return at(`fork: entry ${entry.seq} differs from the one already held`);
    }
    if (entry.seq !== head.seq + 1) return at(`gap: expected entry ${head.seq + 1}, got ${entry.seq}`);
    if (entry.prev_hash !== head.hash) return at(`fork: entry ${entry.seq} does not follow the held head ${head.seq} (previous hash differs)`);
    return "accept";
  }

  /**
   * Lifts the quarantine of `origin`. The refused entry is accepted as a new anchor when
   * it comes again, unchanged; when it forked from an entry already held, held entries
   * stay as they are and the entry after the held head becomes the anchor instead. The
   * break is recorded as a chain base and both steps are audited.
   * Resolves false when the origin was not quarantined.
   */
  resolve(origin: string, actor: string): Promise<boolean> {
    return this.#writes.run(async () => {
      const quarantine = await this.#quarantines.get(origin);
      if (!quarantine) return false;
      const head = (await this.#heads.get(origin)) ?? { origin, epoch: quarantine.epoch, seq: 0, hash: GENESIS_HASH };
      const belowHead = quarantine.epoch === head.epoch && quarantine.seq <= head.seq;
      const edited = quarantine.contentHash === undefined ? {} : { contentHash: quarantine.contentHash };
      const reanchorAt = belowHead ? { epoch: head.epoch, seq: head.seq + 1 } : { epoch: quarantine.epoch, seq: quarantine.seq, hash: quarantine.hash, ...edited };
      const recorded = quarantine.contentHash === undefined || belowHead ? {} : { content_hash: quarantine.contentHash };
      const details = { ...publicQuarantine(quarantine), anchor_seq: reanchorAt.seq, ...recorded };
      const note = await this.#ownEntries([{ actor, action: "audit.resolve", target: origin, result: "ok", details }]);
      await this.#store.db.batch([del(this.#quarantines, origin), put(this.#heads, origin, { ...head, reanchorAt }), ...note.ops], { sync: true });
      this.emit("change");
      return true;
    });
  }

  /** Heads of every origin in the subtree of `site`, as this node holds them. */
  async headsIn(site: string): Promise<AuditHead[]> {
    const result: AuditHead[] = [];
    for await (const head of this.#heads.values()) if (isInSubtree(head.origin, site)) result.push(stripFlags(head));
    return result;
  }

  /** Every origin's head. */
  async heads(): Promise<AuditHead[]> {
    return (await this.#heads.values().all()).map(stripFlags);
  }

  /** Origins whose stream is quarantined. */
  async quarantines(): Promise<Quarantine[]> {
    return (await this.#quarantines.values().all()).map(publicQuarantine);
  }

  /** Up to `limit` entries of `origin` after (epoch, seq), across epochs, in order, up to the first unreadable one. */
  async entriesAfter(origin: string, epoch: number, seq: number, limit: number): Promise<AuditEntry[]> {
    const result: AuditEntry[] = [];
    for (const stored of await this.storedAfter(origin, epoch, seq, limit)) {
      if (!stored.entry) break;
      result.push(stored.entry);
    }
    return result;
  }

  /**
   * Like {@link entriesAfter}, with the position each entry's key gives it: a reader that
   * must move past what it read (the feed's cursor) goes by the key, which orders the
   * store, never by what a value says about itself. A value that cannot be read comes
   * with the reason instead of an entry.
   */
  async storedAfter(origin: string, epoch: number, seq: number, limit: number): Promise<StoredEntry[]> {
    const result: StoredEntry[] = [];
    for await (const stored of this.#read({ gt: entryKey(origin, epoch, seq), lt: `${origin}}`, limit })) result.push(stored);
    return result;
  }

  /**
   * Stored entries in key order, each with the position its key names. Values are read as
   * text and parsed here, one by one: a value that is not an entry is yielded with the
   * reason and never ends the iteration.
   */
  async *#read(range: { gt?: string; lt?: string; limit?: number; reverse?: boolean } = {}): AsyncGenerator<StoredEntry> {
    for await (const [key, text] of this.#texts.iterator(range)) {
      const at = keyPosition(key);
      if (at) yield { ...at, ...parseEntry(text) };
    }
  }

  /** How many entries of `origin` lie after (epoch, seq). */
  async countAfter(origin: string, epoch: number, seq: number): Promise<number> {
    let count = 0;
    for await (const _key of this.#entries.keys({ gt: entryKey(origin, epoch, seq), lt: `${origin}}` })) count += 1;
    return count;
  }

  /** Records the heads the parent acknowledged: they bound pruning and anchor `verify`. */
  async saveAnchors(heads: readonly AuditHead[]): Promise<void> {
    if (heads.length === 0) return;
    await this.#anchors.batch(heads.map((head) => ({ type: "put" as const, key: head.origin, value: stripFlags(head) })));
  }

  /** Heads acknowledged by the parent, by origin. */
  async anchors(): Promise<Map<string, AuditHead>> {
    return new Map((await this.#anchors.values().all()).map((head) => [head.origin, head]));
  }

  /**
   * Verifies every chain held (or those in the subtree of `site`): sequence without
   * gaps, each previous hash, each entry's own hash, the head record, and the heads
   * the parent acknowledged. Reads the node's own chains first (they decide which chain
   * bases are trusted), then every other chain in one pass, in key order. Runs between
   * writes, not beside them: heads and entries read while a batch lands would disagree.
   */
  verify(site?: string): Promise<ChainReport[]> {
    return this.#writes.run(() => this.#verifyNow(site));
  }

  async #verifyNow(site: string | undefined): Promise<ChainReport[]> {
    const inScope = (origin: string) => site === undefined || isInSubtree(origin, site);
    const heads = new Map((await this.#heads.values().all()).map((head) => [head.origin, head]));
    const anchors = await this.anchors();
    const bases = new Map((await this.#bases.values().all()).map((base) => [entryKey(base.origin, base.epoch, base.seq), base]));
    const quarantines = new Map((await this.quarantines()).map((q) => [q.origin, q]));
    // The node's own chains are written only in its own epoch, and the head record follows the
    // last of them: a chain of any other epoch that the head record does not name was put there
    // outside the log (the feed ships by head record, so no ancestor would ever see it).
    const ownHeadEpoch = heads.get(this.#site)?.epoch;
    const accounted = (epoch: number) => epoch === this.#epoch || epoch === ownHeadEpoch;
    const ledger = await this.#ownLedger(accounted);
    const check = (chain: StoredEntry[], trusted: (base: ChainBase) => boolean): ChainReport => {
      const first = chain[0]!;
      const head = heads.get(first.origin);
      return checkChain(chain, {
        base: (at) => bases.get(entryKey(at.origin, at.epoch, at.seq)),
        trusted,
        head: head?.epoch === first.epoch ? head : undefined,
        anchor: anchors.get(first.origin),
        quarantine: quarantines.get(first.origin)?.reason,
      });
    };
    // Bases are not hashed. One of this node's own chains is trusted only with its record in
    // the own log: prune writes both in one batch, and a later prune records its newer base.
    const ownReports = [...ledger.chains].map(([epoch, chain]) => {
      const report = check(chain, ledger.records);
      if (accounted(epoch)) return report;
      const reason = `entries of epoch ${epoch} of ${this.#site}, but this node is epoch ${this.#epoch}: they were added outside the log`;
      return { ...report, ok: false, badSeq: chain[0]!.seq, reason };
    });
    // Another origin's base may have lost its record to the own log's retention: it is
    // trusted without one only when the own chain itself verified from a recorded base,
    // that is, when the own log really was pruned, not cut by someone.
    const own = ownReports.find((report) => report.epoch === this.#epoch);
    const ownBase = own && bases.get(entryKey(this.#site, this.#epoch, own.firstSeq));
    const vouched = own?.ok === true && ownBase !== undefined && ledger.records(ownBase);
    const trusts = (base: ChainBase) => ledger.records(base) || (base.origin !== this.#site && vouched);

    const reports: ChainReport[] = inScope(this.#site) ? ownReports : [];
    let chain: StoredEntry[] = [];
    const flush = () => {
      if (chain.length > 0) reports.push(check(chain, trusts));
      chain = [];
    };
    // Chains are grouped by what the keys say: a value cannot move itself into another chain.
    // The own origin's keys were read above; the two ranges skip them.
    for (const range of [{ lt: `${this.#site}|` }, { gt: `${this.#site}}` }]) {
      for await (const stored of this.#read(range)) {
        if (!inScope(stored.origin)) continue;
        const current = chain[0];
        if (current && (current.origin !== stored.origin || current.epoch !== stored.epoch)) flush();
        chain.push(stored);
      }
      flush();
    }
    const reported = (origin: string, epoch: number) => reports.find((r) => r.origin === origin && r.epoch === epoch);
    const prunedUpTo = (origin: string, epoch: number, seq: number, hash: string) => {
      const base = bases.get(entryKey(origin, epoch, seq + 1));
      return base !== undefined && base.prev_hash === hash && trusts(base);
    };
    const missing = (origin: string, epoch: number, seq: number, hash: string, reason: string): ChainReport => ({
      origin, epoch, entries: 0, firstSeq: 0, lastSeq: seq, headHash: hash, ok: false, badSeq: seq, reason,
      ...(quarantines.has(origin) ? { quarantined: quarantines.get(origin)!.reason } : {}),
    });
    for (const [origin, head] of heads) {
      if (!inScope(origin) || head.seq === 0 || reported(origin, head.epoch)) continue;
      reports.push(prunedUpTo(origin, head.epoch, head.seq, head.hash)
        ? { origin, epoch: head.epoch, entries: 0, firstSeq: 0, lastSeq: head.seq, headHash: head.hash, ok: true }
        : missing(origin, head.epoch, head.seq, head.hash, `every entry up to the head record (${head.seq}) is missing`));
    }
    for (const [origin, anchor] of anchors) {
      if (!inScope(origin) || heads.has(origin) || reported(origin, anchor.epoch)) continue;
      reports.push(missing(origin, anchor.epoch, anchor.seq, anchor.hash, `every entry up to ${anchor.seq}, acknowledged by the parent, is missing, and its head record too`));
    }
    for (const end of ledger.epochEnds) {
      if (!inScope(end.origin)) continue;
      const report = reported(end.origin, end.epoch);
      if (report && report.ok && (report.lastSeq !== end.seq || report.headHash !== end.hash)) {
        Object.assign(report, { ok: false, badSeq: report.lastSeq + 1, reason: `the epoch ended at entry ${end.seq}; entries after ${report.lastSeq} are missing` });
      } else if (!report && !prunedUpTo(end.origin, end.epoch, end.seq, end.hash)) {
        reports.push(missing(end.origin, end.epoch, end.seq, end.hash, `every entry of this epoch, which ended at ${end.seq}, is missing`));
      }
    }
    return reports.sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.epoch - b.epoch));
  }

  /**
   * This node's own chains (by epoch, as their keys say) and what its hash-chained log
   * records about chain bases (prunes, re-anchors) and epoch ends. Bases and heads are
   * kept beside the chains and are not hashed: `records` tells whether the own log
   * accounts for a base. Only chains of `accounted` epochs are taken at their word: the
   * records of any other are not believed.
   */
  async #ownLedger(accounted: (epoch: number) => boolean): Promise<{ chains: Map<number, StoredEntry[]>; records(base: ChainBase): boolean; epochEnds: AuditHead[] }> {
    const chains = new Map<number, StoredEntry[]>();
    const recorded = new Set<string>();
    const epochEnds: AuditHead[] = [];
    for await (const stored of this.#read(originBounds(this.#site))) {
      const chain = chains.get(stored.epoch);
      if (chain) chain.push(stored);
      else chains.set(stored.epoch, [stored]);
      const { entry } = stored;
      if (!entry || !accounted(stored.epoch) || !entry.action.startsWith("audit.")) continue;
      const details = parseDetails(entry.details);
      if (!details) continue;
      if (entry.action === "audit.prune") recorded.add(`${entryKey(entry.target, Number(details.epoch), Number(details.to) + 1)}#${details.last_hash}`);
      if (entry.action === "audit.reanchor") {
        const edited = details.content_hash === undefined ? "" : `#${details.hash}#${details.content_hash}`;
        recorded.add(`${entryKey(entry.target, Number(details.epoch), Number(details.seq))}#${details.prev_hash}${edited}`);
      }
      if (entry.action === "audit.epoch") {
        epochEnds.push({ origin: entry.target, epoch: Number(details.epoch), seq: Number(details.last_seq), hash: String(details.last_hash) });
      }
    }
    return {
      chains,
      records: (base) => {
        const edited = base.contentHash === undefined ? "" : `#${base.hash}#${base.contentHash}`;
        return recorded.has(`${entryKey(base.origin, base.epoch, base.seq)}#${base.prev_hash}${edited}`);
      },
      epochEnds,
    };
  }

  /**
   * Entries matching `query`, oldest first per origin. A stored value that cannot be read
   * or does not say what its key says is passed over (verify reports it): one bad value
   * never makes the listing fail.
   */
  async list(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const entries: AuditEntry[] = [];
    const limit = query.limit ?? 10_000;
    for await (const stored of this.#read()) {
      // Go by the key: a value says what it likes about itself.
      if (query.site !== undefined && !isInSubtree(stored.origin, query.site)) continue;
      const { entry } = stored;
      if (!entry || !saysItsKey(stored)) continue;
      if (query.sinceMs !== undefined && entry.time_ms < query.sinceMs) continue;
      if (query.untilMs !== undefined && entry.time_ms > query.untilMs) continue;
      if (query.actor !== undefined && entry.actor !== query.actor) continue;
      if (query.action !== undefined && entry.action !== query.action && !entry.action.startsWith(`${query.action}.`)) continue;
      entries.push(entry);
      if (entries.length >= limit) break;
    }
    return entries;
  }

  /**
   * When this node received a relayed entry, for keys read in ascending order: ingest puts
   * one receipt mark per chain and batch, at the batch's last entry of that chain, so an
   * entry's receipt is the first mark at or after its key in its chain (0 when none).
   * One seek per mark, not per entry.
   */
  #receiptReader(): (key: string) => Promise<number> {
    let mark: { chain: string; key: string; ms: number } | undefined;
    return async (key) => {
      if (mark && key <= mark.key && key.startsWith(mark.chain)) return mark.ms;
      const chain = key.slice(0, key.lastIndexOf("|") + 1);
      const [found] = await this.#received.iterator({ gte: key, lt: `${chain}~`, limit: 1 }).all();
      mark = found ? { chain, key: found[0], ms: found[1] } : undefined;
      return mark?.ms ?? 0;
    };
  }

  /**
   * Deletes entries older than `retentionMs` that the parent has acknowledged (every
   * entry of an epoch before the acknowledged one, and the acknowledged epoch up to its
   * head); a root, with no parent, keeps at least seven years. An entry relayed from the
   * subtree is as old as the later of its origin's time and the time this node received it
   * (an origin's clock may be years off); this node's own entries are as old as their time.
   * The last deleted entry of
   * each chain becomes its base, so `verify` still proves the rest, and the deletion is
   * itself audited. Resolves with how many entries were deleted.
   */
  prune(options: { nowMs: number; retentionMs: number; isRoot: boolean; actor: string }): Promise<number> {
    return this.#writes.run(async () => {
      const cutoff = options.nowMs - (options.isRoot ? Math.max(options.retentionMs, SEVEN_YEARS_MS) : options.retentionMs);
      const anchors = await this.anchors();
      const covered = (entry: AuditEntry) => {
        if (options.isRoot) return true;
        const anchor = anchors.get(entry.origin);
        return anchor !== undefined && (entry.epoch < anchor.epoch || (entry.epoch === anchor.epoch && entry.seq <= anchor.seq));
      };
      const ops: BatchOp[] = [];
      const pruned = new Map<string, { origin: string; epoch: number; from: number; to: number; last: AuditEntry }>();
      let blocked = "";
      let deleted = 0;
      const receipt = this.#receiptReader();
      // By key, read tolerantly: a value that cannot be read, or that says it stands elsewhere,
      // stays with everything after it in its chain (verify reports it), and so does whatever
      // follows a gap in the keys, so that each chain's record names exactly what went.
      for await (const stored of this.#read()) {
        const chainId = `${stored.origin}|${stored.epoch}`;
        // Only a prefix of each chain may go: stop at the first entry that must stay.
        if (blocked === chainId) continue;
        const { entry } = stored;
        const run = pruned.get(chainId);
        const key = entryKey(stored.origin, stored.epoch, stored.seq);
        if (
          !entry || !saysItsKey(stored) || (run !== undefined && stored.seq !== run.to + 1) ||
          entry.time_ms >= cutoff || !covered(entry) || (entry.origin !== this.#site && (await receipt(key)) >= cutoff)
        ) {
          blocked = chainId;
          continue;
        }
        ops.push(del(this.#entries, key));
        deleted += 1;
        if (run) Object.assign(run, { to: entry.seq, last: entry });
        else pruned.set(chainId, { origin: entry.origin, epoch: entry.epoch, from: entry.seq, to: entry.seq, last: entry });
      }
      if (deleted === 0) return 0;
      const notes: AuditEvent[] = [];
      for (const run of pruned.values()) {
        const base: ChainBase = { origin: run.origin, epoch: run.epoch, seq: run.to + 1, prev_hash: run.last.hash, why: "pruned" };
        // The base of an earlier prune now stands before the chain's start.
        ops.push(del(this.#bases, entryKey(run.origin, run.epoch, run.from)));
        // Receipt marks at or before the last deleted entry cover deleted entries only.
        for await (const key of this.#received.keys({ gte: entryKey(run.origin, run.epoch, 0), lte: entryKey(run.origin, run.epoch, run.to) })) {
          ops.push(del(this.#received, key));
        }
        ops.push(put(this.#bases, entryKey(run.origin, run.epoch, run.to + 1), base));
        notes.push({
          actor: options.actor,
          action: "audit.prune",
          target: run.origin,
          result: "ok",
          details: { epoch: run.epoch, from: run.from, to: run.to, last_hash: run.last.hash },
        });
      }
      ops.push(...(await this.#ownEntries(notes)).ops);
      await this.#store.db.batch(ops, { sync: true });
      this.emit("change");
      return deleted;
    });
  }
}

/** Events in one grouped append: bounds one batch's size however many callers wait. */
const MAX_GROUP_APPEND = 1_000;
const SEVEN_YEARS_MS = 7 * 366 * 24 * 3600 * 1000;

/** Origin, epoch and sequence of an entry key, or undefined for a key outside the layout. */
function keyPosition(key: string): { origin: string; epoch: number; seq: number } | undefined {
  const match = /^(.+)\|(\d{10})\|(\d{16})$/.exec(key);
  return match ? { origin: match[1]!, epoch: Number(match[2]), seq: Number(match[3]) } : undefined;
}

/** Whether a stored entry's value names the position its key gives it. */
function saysItsKey(stored: StoredEntry): boolean {
  const { entry } = stored;
  return entry !== undefined && entry.origin === stored.origin && entry.epoch === stored.epoch && entry.seq === stored.seq;
}

/** An entry value read as text: the entry, or why it is none. */
function parseEntry(text: string): { entry: AuditEntry } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: "not valid JSON" };
  }
  return isEntry(value) ? { entry: value } : { problem: "not an audit entry" };
}

const STRING_FIELDS = ["origin", "actor", "action", "target", "result", "details", "prev_hash", "hash"] as const;
const NUMBER_FIELDS = ["epoch", "seq", "time_ms"] as const;

function isEntry(value: unknown): value is AuditEntry {
  if (typeof value !== "object" || value === null) return false;
  const fields = value as Record<string, unknown>;
  return STRING_FIELDS.every((f) => typeof fields[f] === "string") && NUMBER_FIELDS.every((f) => typeof fields[f] === "number");
}

/** An entry's details as an object, or undefined when they are not a JSON object. */
function parseDetails(details: string): Record<string, number | string> | undefined {
  try {
    const value: unknown = JSON.parse(details);
    return typeof value === "object" && value !== null ? (value as Record<string, number | string>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A head as stored: after a resolved quarantine it names the entry to accept as a new anchor
 * (when that entry was edited, also the hash of its content).
 */
type HeldHead = AuditHead & { reanchorAt?: { epoch: number; seq: number; hash?: string; contentHash?: string } };

/** A quarantine as stored: for an edited entry, also the hash of its content. */
type HeldQuarantine = Quarantine & { contentHash?: string };

function publicQuarantine(q: HeldQuarantine): Quarantine {
  return { origin: q.origin, epoch: q.epoch, seq: q.seq, hash: q.hash, reason: q.reason, atMs: q.atMs };
}

function stripFlags(head: HeldHead): AuditHead {
  return { origin: head.origin, epoch: head.epoch, seq: head.seq, hash: head.hash };
}
