import { join } from "node:path";
import { GENESIS_HASH, hashEntry } from "../../src/audit/audit-hash.ts";
import type { AuditEntry, AuditHead } from "../../src/gen/vmtree/v1/audit.ts";
import { NodeStore } from "../../src/store/node-store.ts";

/**
 * Edits a stopped node's audit log behind its back, as someone with access to the
 * database files would (R-6.4 says this must not go unnoticed). Keys follow the
 * store's layout: `ORIGIN|EPOCH|SEQ`, zero-padded.
 */
export class AuditTamper {
  readonly #store: NodeStore;
  readonly #origin: string;

  private constructor(store: NodeStore, origin: string) {
    this.#store = store;
    this.#origin = origin;
  }

  static async open(dataDir: string, origin: string): Promise<AuditTamper> {
    return new AuditTamper(await NodeStore.open(join(dataDir, "db")), origin);
  }

  get #entries() {
    return this.#store.section<AuditEntry>("audit-entry");
  }

  #key(seq: number, epoch = 1): string {
    return `${this.#origin}|${String(epoch).padStart(10, "0")}|${String(seq).padStart(16, "0")}`;
  }

  async entry(seq: number): Promise<AuditEntry> {
    const entry = await this.#entries.get(this.#key(seq));
    if (!entry) throw new Error(`no entry ${seq} of ${this.#origin}`);
    return entry;
  }

  /** Changes a field of entry `seq` without recomputing its hash. */
  async edit(seq: number, patch: Partial<AuditEntry>): Promise<void> {
    await this.#entries.put(this.#key(seq), { ...(await this.entry(seq)), ...patch });
  }

  async delete(seq: number): Promise<void> {
    await this.#entries.del(this.#key(seq));
  }

  /** Swaps the stored values of entries `a` and `b`. */
  async swap(a: number, b: number): Promise<void> {
    const [first, second] = [await this.entry(a), await this.entry(b)];
    await this.#entries.put(this.#key(a), second);
    await this.#entries.put(this.#key(b), first);
  }

  /**
   * Inserts a forged entry with a correct hash after `seq`, moving every later entry
   * one place on (their own fields, hashes included, unchanged), up to `last`.
   */
  async insertAfter(seq: number, last: number, forged: Pick<AuditEntry, "actor" | "action" | "target">): Promise<void> {
    for (let s = last; s > seq; s--) await this.#entries.put(this.#key(s + 1), await this.entry(s));
    const previous = await this.entry(seq);
    const unhashed = { ...previous, ...forged, seq: seq + 1, prev_hash: previous.hash, details: "{}" };
    await this.#entries.put(this.#key(seq + 1), { ...unhashed, hash: hashEntry(unhashed) });
  }

  /**
   * Rewrites the whole history from entry 1 to `last`: `change` alters entries, then
   * every hash and the head record are recomputed so that the chain is self-consistent.
   */
  async rewrite(last: number, change: (entry: AuditEntry) => AuditEntry): Promise<void> {
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= last; seq++) {
      const { hash: _old, ...rest } = change(await this.entry(seq));
      const unhashed = { ...rest, prev_hash: prev };
      prev = hashEntry(unhashed);
      await this.#entries.put(this.#key(seq), { ...unhashed, hash: prev });
    }
    await this.#store.section<AuditHead>("audit-head").put(this.#origin, { origin: this.#origin, epoch: 1, seq: last, hash: prev });
  }

  /** The sequence of the head the parent acknowledged (this node's anchor). */
  async anchorSeq(): Promise<number> {
    return (await this.#store.section<AuditHead>("audit-anchor").get(this.#origin))?.seq ?? 0;
  }

  /** The head record's sequence. */
  async headSeq(): Promise<number> {
    return (await this.#store.section<AuditHead>("audit-head").get(this.#origin))?.seq ?? 0;
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}
