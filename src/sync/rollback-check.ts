import type { AuditHead } from "../gen/vmtree/v1/audit.ts";
import type { Checkpoint } from "../gen/vmtree/v1/link.ts";

/** What a child's own store has produced of its own origin, in its own epoch. */
export interface OwnProgress {
  /** The last inventory sequence the store wrote (0 when none). */
  inventorySeq: number;
  /** The last audit sequence the store holds (0 when none). */
  auditSeq: number;
}

/** What the parent said at hello, and who is who. */
export interface RollbackInput {
  site: string;
  epoch: number;
  parentSite: string;
  checkpoints: readonly Checkpoint[];
  auditHeads: readonly AuditHead[];
  own: OwnProgress;
}

const REMEDY = (parent: string) =>
  `the data directory was restored from an older backup or rolled back; its new changes would be lost. ` +
  `Enrol the site again with a new invitation (vmtree invite on ${parent}, then vmtree join into an empty data directory) to start a new epoch`;

/** The parent's head of this node's own audit chain in its own epoch. */
export function parentOwnAuditHead(site: string, epoch: number, heads: readonly AuditHead[]): AuditHead | undefined {
  return heads.find((head) => head.origin === site && head.epoch === epoch);
}

/**
 * Whether the parent holds more of this node's own origin, in its own epoch, than the
 * store has produced: then the store was rolled back (restored from an older backup), its
 * per-origin sequences restart below what the parent holds and whatever it sends now
 * would be taken as old (inventory) or as a fork (audit). Returns the reason, or
 * undefined when the store is at or ahead of the parent.
 *
 * Hashes are deliberately not compared: a store whose chain differs from the parent's at
 * the same sequence is sent as usual, so that the parent's chain check finds the fork and
 * raises its alarm (a history rewritten on the child must be seen above it).
 *
 * After a kill -9 of either end this never trips: a child's changes are durable before
 * they are sent, and a parent holds no more than it received.
 */
export function rollbackProblem(input: RollbackInput): string | undefined {
  const { site, epoch, parentSite, own } = input;
  const checkpoint = input.checkpoints.find((c) => c.origin === site && c.epoch === epoch);
  if (checkpoint && checkpoint.seq > own.inventorySeq) {
    return `${parentSite} holds changes of ${site} up to ${checkpoint.seq} but this store only reaches ${own.inventorySeq}: ${REMEDY(parentSite)}`;
  }
  const head = parentOwnAuditHead(site, epoch, input.auditHeads);
  if (head && head.seq > own.auditSeq) {
    return `${parentSite} holds audit entries of ${site} up to ${head.seq} but this store only reaches ${own.auditSeq}: ${REMEDY(parentSite)}`;
  }
  return undefined;
}
