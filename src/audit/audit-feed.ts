import type { ClientDuplexStream } from "@grpc/grpc-js";
import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import type { ParentServiceClient, SyncAuditRequest, SyncAuditResponse } from "../gen/vmtree/v1/link.ts";
import type { FeedBatch, UpFeed } from "../link/up-feed.ts";
import type { Logger } from "../util/log.ts";
import type { AuditLog } from "./audit-log.ts";
import type { StoredEntry } from "./chain.ts";

/**
 * Most bytes of entries one batch carries, well under the link's message limit: an entry's
 * details may be 16 KiB, so a count alone cannot keep a batch within it.
 */
export const MAX_AUDIT_BATCH_BYTES = 1024 * 1024;
/** Protobuf framing, numbers and the two hashes of one entry, rounded up. */
const ENTRY_OVERHEAD_BYTES = 192;

/**
 * Audit entries going up one link session: for each origin held here, every entry after
 * the head the parent reported at hello, in order (by epoch, then sequence), then new
 * entries as they are written. Acknowledged heads become this node's anchors.
 *
 * An entry that cannot be read stops its origin's shipment right before it (the parent
 * must not receive a gap), with one warning; other origins go on, and the origin resumes
 * by itself once the entry is readable again.
 */
export class AuditFeed implements UpFeed<SyncAuditRequest, SyncAuditResponse> {
  readonly name = "audit";
  readonly source: AuditLog;
  readonly #cursors = new Map<string, { epoch: number; seq: number }>();
  readonly #log: Pick<Logger, "warn"> | undefined;
  /** Unreadable entries already warned about, as `origin|epoch|seq`. */
  readonly #warned = new Set<string>();
  /** Entries acknowledged in this session. */
  sent = 0;
  /** Origins the parent reported as quarantined, as of its last acknowledgement. */
  quarantinedByParent: string[] = [];

  constructor(log: AuditLog, parentHeads: readonly AuditHead[], logger?: Pick<Logger, "warn">) {
    this.source = log;
    this.#log = logger;
    for (const head of parentHeads) this.#cursors.set(head.origin, { epoch: head.epoch, seq: head.seq });
  }

  open(client: ParentServiceClient): ClientDuplexStream<SyncAuditRequest, SyncAuditResponse> {
    return client.syncAudit();
  }

  async next(limit: number): Promise<FeedBatch<SyncAuditRequest> | undefined> {
    const entries: AuditEntry[] = [];
    let bytes = 0;
    for (const head of await this.source.heads()) {
      if (entries.length >= limit || bytes >= MAX_AUDIT_BATCH_BYTES) break;
      const cursor = this.#cursors.get(head.origin) ?? { epoch: 0, seq: 0 };
      for (const stored of await this.source.storedAfter(head.origin, cursor.epoch, cursor.seq, limit - entries.length)) {
        const { entry } = stored;
        if (!entry) {
          this.#unreadable(stored);
          break;
        }
        bytes += entryBytes(entry);
        if (bytes > MAX_AUDIT_BATCH_BYTES && entries.length > 0) break;
        entries.push(entry);
        // The cursor follows the key the entry was read from, never what its value says:
        // a value stored under another key (tampering) must not send the feed back.
        this.#advance(head.origin, stored);
      }
    }
    return entries.length === 0 ? undefined : { request: { entries, pending: 0 }, count: entries.length };
  }

  #unreadable(stored: StoredEntry): void {
    const id = `${stored.origin}|${stored.epoch}|${stored.seq}`;
    if (this.#warned.has(id)) return;
    this.#warned.add(id);
    this.#log?.warn("audit entry cannot be read; its origin is not shipped past it until it is repaired", {
      origin: stored.origin, epoch: stored.epoch, seq: stored.seq, reason: stored.problem,
    });
  }

  #advance(origin: string, at: { epoch: number; seq: number }): void {
    const cursor = this.#cursors.get(origin);
    if (!cursor || at.epoch > cursor.epoch || (at.epoch === cursor.epoch && at.seq > cursor.seq)) {
      this.#cursors.set(origin, { epoch: at.epoch, seq: at.seq });
    }
  }

  async acknowledged(response: SyncAuditResponse, count: number): Promise<void> {
    this.sent += count;
    this.quarantinedByParent = response.quarantined_origins;
    await this.source.saveAnchors(response.heads);
  }
}

/** An upper bound of an entry's encoded size. */
function entryBytes(entry: AuditEntry): number {
  return ENTRY_OVERHEAD_BYTES + Buffer.byteLength(entry.origin) + Buffer.byteLength(entry.actor) + Buffer.byteLength(entry.action) +
    Buffer.byteLength(entry.target) + Buffer.byteLength(entry.result) + Buffer.byteLength(entry.details);
}
