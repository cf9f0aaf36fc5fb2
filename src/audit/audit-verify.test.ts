import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import { NodeStore } from "../store/node-store.ts";
import { GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import { type AuditEvent, AuditLog, type ChainBase, type ChainReport } from "./audit-log.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

const CHANGED = "the entry was changed: its hash does not match its content";
const PREV_MISMATCH = "its previous hash does not match the entry before it: an entry was inserted, removed or changed";
const UNACCOUNTED_BASE = "a restart point is recorded here that this node's own log does not account for: entries before it may have been removed";
const REWRITTEN = "it differs from the head the parent acknowledged: the history was rewritten";

let dir: string;
let store: NodeStore;
let log: AuditLog;
let entries: AuditEntry[];

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-audit-verify-"));
  store = await NodeStore.open(path.join(dir, "store"));
  log = new AuditLog(store, "kz", 1);
  entries = await log.appendMany(events(5), NOW - 1000);
});

afterEach(async () => {
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function events(n: number, prefix = "vms.view_live"): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => ({ actor: "user:operator", action: prefix, target: `cam-${i + 1}`, result: "ok" }));
}

// The store's layout, written out here so that the test tampers the way someone with the
// database files would: `ORIGIN|EPOCH|SEQ`, zero-padded to 10 and 16 digits.
const key = (seq: number, epoch = 1, origin = "kz") => `${origin}|${String(epoch).padStart(10, "0")}|${String(seq).padStart(16, "0")}`;
const section = () => store.section<AuditEntry>("audit-entry");
const heads = () => store.section<AuditHead>("audit-head");
const at = (seq: number) => entries[seq - 1]!;

function rehash(entry: AuditEntry): AuditEntry {
  const { hash: _old, ...rest } = entry;
  return { ...rest, hash: hashEntry(rest) };
}

/** A clean report of the kz chain of epoch 1 with entries `first..last`. */
function clean(first: number, last: number, headHash: string): ChainReport {
  return { origin: "kz", epoch: 1, entries: last - first + 1, firstSeq: first, lastSeq: last, headHash, ok: true };
}

function broken(report: ChainReport, badSeq: number, reason: string): ChainReport {
  return { ...report, ok: false, badSeq, reason };
}

describe("AuditLog.verify", () => {
  it("AuditLog.verify - reports a clean log as ok with entries, firstSeq, lastSeq and headHash", async () => {
    expect(await log.verify()).toEqual([{ origin: "kz", epoch: 1, entries: 5, firstSeq: 1, lastSeq: 5, headHash: at(5).hash, ok: true }]);
  });

  it("AuditLog.verify - reports nothing for an empty log", async () => {
    await store.close();
    store = await NodeStore.open(path.join(dir, "empty"));
    expect(await new AuditLog(store, "kz", 1).verify()).toEqual([]);
  });

  it("AuditLog.verify - reports one chain per origin and epoch, sorted, and only the subtree asked for", async () => {
    const two = await new AuditLog(store, "kz", 2).appendMany(events(2));
    const ala = await new AuditLog(store, "kz.ala", 1).appendMany(events(1));
    const ast = await new AuditLog(store, "kz.ast", 1).appendMany(events(3));
    expect(await log.verify()).toEqual([
      clean(1, 5, at(5).hash),
      { origin: "kz", epoch: 2, entries: 2, firstSeq: 1, lastSeq: 2, headHash: two[1]!.hash, ok: true },
      { origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 1, lastSeq: 1, headHash: ala[0]!.hash, ok: true },
      { origin: "kz.ast", epoch: 1, entries: 3, firstSeq: 1, lastSeq: 3, headHash: ast[2]!.hash, ok: true },
    ]);
    expect((await log.verify("kz.ast")).map((r) => r.origin)).toEqual(["kz.ast"]);
    expect(await log.verify("kz.none")).toEqual([]);
  });

  it("AuditLog.verify - an edited entry (hash not recomputed) breaks at that entry", async () => {
    await section().put(key(3), { ...at(3), actor: "user:nobody" });
    expect(await log.verify()).toEqual([broken(clean(1, 5, at(5).hash), 3, CHANGED)]);
  });

  it("AuditLog.verify - an edited entry with a recomputed hash breaks at the next entry", async () => {
    await section().put(key(3), rehash({ ...at(3), actor: "user:nobody" }));
    expect(await log.verify()).toEqual([broken(clean(1, 5, at(5).hash), 4, PREV_MISMATCH)]);
  });

  it("AuditLog.verify - an edited last entry with a recomputed hash differs from the head record", async () => {
    const forged = rehash({ ...at(5), actor: "user:nobody" });
    await section().put(key(5), forged);
    expect(await log.verify()).toEqual([broken(clean(1, 5, forged.hash), 5, "the last entry differs from the head record")]);
  });

  it("AuditLog.verify - a deleted middle entry is reported missing at the entry after it", async () => {
    await section().del(key(3));
    expect(await log.verify()).toEqual([broken({ ...clean(1, 5, at(5).hash), entries: 4 }, 4, "entry 3 is missing")]);
  });

  it("AuditLog.verify - several deleted middle entries are reported as a range", async () => {
    await section().batch([{ type: "del", key: key(2) }, { type: "del", key: key(3) }, { type: "del", key: key(4) }]);
    expect(await log.verify()).toEqual([broken({ ...clean(1, 5, at(5).hash), entries: 2 }, 5, "entries 2 to 4 are missing")]);
  });

  it("AuditLog.verify - a deleted first entry is reported missing at entry 2", async () => {
    await section().del(key(1));
    expect(await log.verify()).toEqual([broken(clean(2, 5, at(5).hash), 2, "entry 1 is missing")]);
  });

  it("AuditLog.verify - a deleted last entry leaves the head record ahead", async () => {
    await section().del(key(5));
    expect(await log.verify()).toEqual([
      broken(clean(1, 4, at(4).hash), 5, "entry 5 is missing (the head record is at 5)"),
    ]);
  });

  it("AuditLog.verify - every entry deleted, the head record remains", async () => {
    await section().clear();
    expect(await log.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 0, firstSeq: 0, lastSeq: 5, headHash: at(5).hash, ok: false, badSeq: 5, reason: "every entry up to the head record (5) is missing" },
    ]);
  });

  it("AuditLog.verify - a truncated tail with the head record lowered is caught by the anchor", async () => {
    await log.saveAnchors([{ origin: "kz", epoch: 1, seq: 5, hash: at(5).hash }]);
    await section().batch([{ type: "del", key: key(4) }, { type: "del", key: key(5) }]);
    await heads().put("kz", { origin: "kz", epoch: 1, seq: 3, hash: at(3).hash });
    expect(await log.verify()).toEqual([
      broken(clean(1, 3, at(3).hash), 4, "entries up to 5, acknowledged by the parent, are missing"),
    ]);
  });

  it("AuditLog.verify - two swapped entries read as a gap at the first one out of place", async () => {
    await section().batch([{ type: "put", key: key(2), value: at(3) }, { type: "put", key: key(3), value: at(2) }]);
    expect(await log.verify()).toEqual([broken(clean(1, 5, at(5).hash), 3, "entry 2 is missing")]);
  });

  it("AuditLog.verify - the first entry moved to the end reads as missing entries", async () => {
    await section().batch([{ type: "del", key: key(1) }, { type: "put", key: key(6), value: at(1) }]);
    expect(await log.verify()).toEqual([broken({ ...clean(2, 1, at(1).hash), entries: 5 }, 2, "entry 1 is missing")]);
  });

  it("AuditLog.verify - an older entry stored after a newer one is reported as reordered", async () => {
    // Entry 2 copied to the place of entry 5, entry 5 moved on: 1 2 3 4 [2] 5.
    await section().batch([{ type: "put", key: key(5), value: at(2) }, { type: "put", key: key(6), value: at(5) }]);
    expect(await log.verify()).toEqual([
      broken({ ...clean(1, 5, at(5).hash), entries: 6 }, 2, "reordered: entry 2 stands after entry 4"),
    ]);
  });

  it("AuditLog.verify - an entry's value copied under a far key is reported at that key", async () => {
    await section().put(key(999_999), at(3));
    expect(await log.verify()).toEqual([
      broken({ ...clean(1, 3, at(3).hash), entries: 6 }, 999_999, "entry stored at seq 999999 says seq 3"),
    ]);
  });

  it("AuditLog.verify - an entry of another origin stored in this chain is reported at its key", async () => {
    const [ala] = await new AuditLog(store, "kz.ala", 1).appendMany(events(1));
    await section().put(key(6), ala!);
    expect(await log.verify("kz")).toEqual([
      broken({ ...clean(1, 1, ala!.hash), entries: 6 }, 6, "entry stored at kz epoch 1 seq 6 says kz.ala epoch 1 seq 1"),
      { origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 1, lastSeq: 1, headHash: ala!.hash, ok: true },
    ]);
  });

  // A JSON sublevel's iterator throws on such a value: verify used to fail with
  // "Iterator could not decode data" and report nothing at all.
  it("AuditLog.verify - a value that is not valid JSON breaks its chain at that seq, every other chain is still reported", async () => {
    const more = await log.appendMany(events(2));
    const [ala] = await new AuditLog(store, "kz.ala", 1).appendMany(events(1));
    await store.textSection("audit-entry").put(key(6), "x");
    expect(await log.verify()).toEqual([
      broken({ ...clean(1, 7, more[1]!.hash), entries: 7 }, 6, "entry 6 cannot be read: not valid JSON"),
      { origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 1, lastSeq: 1, headHash: ala!.hash, ok: true },
    ]);
  });

  it("AuditLog.verify - an unreadable last entry, and JSON that is no entry, are reported; append goes on after them", async () => {
    await store.textSection("audit-entry").put(key(5), "{}");
    expect(await log.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 5, firstSeq: 1, lastSeq: 5, headHash: "", ok: false, badSeq: 5, reason: "entry 5 cannot be read: not an audit entry" },
    ]);
    const next = await log.append(events(1)[0]!);
    expect([next.seq, next.prev_hash]).toEqual([6, at(5).hash]);
    await store.textSection("audit-entry").put(key(6), "x");
    expect((await log.append(events(1)[0]!)).seq).toBe(7);
    expect((await log.verify())[0]).toMatchObject({ ok: false, badSeq: 5, reason: "entry 5 cannot be read: not an audit entry" });
  });

  it("AuditLog.verify - an inserted entry (correct hash, later entries moved on) appears twice", async () => {
    // A forged entry 3 chained onto entry 2; the original 3, 4, 5 moved one place on, unchanged.
    const forged = rehash({ ...at(2), seq: 3, actor: "user:intruder", action: "vms.view_archive", prev_hash: at(2).hash });
    await section().batch([
      { type: "put", key: key(6), value: at(5) },
      { type: "put", key: key(5), value: at(4) },
      { type: "put", key: key(4), value: at(3) },
      { type: "put", key: key(3), value: forged },
    ]);
    expect(await log.verify()).toEqual([
      broken({ ...clean(1, 5, at(5).hash), entries: 6 }, 3, "entry 3 appears twice: an entry was inserted"),
    ]);
  });

  it("AuditLog.verify - an entry replaced by a forged one with a correct hash breaks at the next entry", async () => {
    const forged = rehash({ ...at(3), actor: "user:intruder" });
    await section().put(key(3), forged);
    expect(await log.verify()).toEqual([broken(clean(1, 5, at(5).hash), 4, PREV_MISMATCH)]);
  });

  it("AuditLog.verify - an entry appended behind the log's back is past the head record", async () => {
    const forged = rehash({ ...at(5), seq: 6, prev_hash: at(5).hash, actor: "user:intruder" });
    await section().put(key(6), forged);
    expect(await log.verify()).toEqual([
      broken({ ...clean(1, 6, forged.hash) }, 6, "entries after the head record (5) were added outside the log"),
    ]);
  });

  it("AuditLog.verify - an edited head record differs from the last entry", async () => {
    await heads().put("kz", { origin: "kz", epoch: 1, seq: 5, hash: "f".repeat(64) });
    expect(await log.verify()).toEqual([broken(clean(1, 5, at(5).hash), 5, "the last entry differs from the head record")]);
  });

  it("AuditLog.verify - the whole history rewritten with recomputed hashes is caught by an earlier anchor", async () => {
    await log.saveAnchors([{ origin: "kz", epoch: 1, seq: 3, hash: at(3).hash }]);
    let prev = GENESIS_HASH;
    const rewritten: AuditEntry[] = [];
    for (const entry of entries) {
      const changed = entry.seq === 2 ? { ...entry, actor: "user:nobody" } : entry;
      const next = rehash({ ...changed, prev_hash: prev });
      rewritten.push(next);
      prev = next.hash;
    }
    await section().batch(rewritten.map((e) => ({ type: "put" as const, key: key(e.seq), value: e })));
    await heads().put("kz", { origin: "kz", epoch: 1, seq: 5, hash: prev });
    // On its own the rewritten chain is consistent: only the anchor tells.
    expect(rewritten.every((e, i) => e.prev_hash === (i === 0 ? GENESIS_HASH : rewritten[i - 1]!.hash))).toBe(true);
    expect(await log.verify()).toEqual([broken(clean(1, 5, prev), 3, REWRITTEN)]);
  });

  it("AuditLog.verify - a rewritten history is caught at the anchor when it is the last entry", async () => {
    await log.saveAnchors([{ origin: "kz", epoch: 1, seq: 5, hash: at(5).hash }]);
    const forged1 = rehash({ ...at(1), actor: "user:nobody" });
    let prev = forged1.hash;
    const rewritten = [forged1];
    for (const entry of entries.slice(1)) {
      const next = rehash({ ...entry, prev_hash: prev });
      rewritten.push(next);
      prev = next.hash;
    }
    await section().batch(rewritten.map((e) => ({ type: "put" as const, key: key(e.seq), value: e })));
    await heads().put("kz", { origin: "kz", epoch: 1, seq: 5, hash: prev });
    expect(await log.verify()).toEqual([broken(clean(1, 5, prev), 5, REWRITTEN)]);
  });

  it("AuditLog.verify - an anchor of another epoch does not judge this epoch's entries", async () => {
    await log.saveAnchors([{ origin: "kz", epoch: 2, seq: 3, hash: "e".repeat(64) }]);
    expect(await log.verify()).toEqual([clean(1, 5, at(5).hash)]);
  });

  // Removed legitimately: the base of the own chain comes with its audit.prune record, as prune writes them.
  const recordPrune = (to: number, lastHash: string) =>
    log.append({ actor: "user:admin", action: "audit.prune", target: "kz", result: "ok", details: { epoch: 1, from: 1, to, last_hash: lastHash } });

  it("AuditLog.verify - accepts a chain base where entries were legitimately removed", async () => {
    await section().batch([{ type: "del", key: key(1) }, { type: "del", key: key(2) }]);
    await store.section<ChainBase>("audit-base").put(key(3), { origin: "kz", epoch: 1, seq: 3, prev_hash: at(2).hash, why: "pruned" });
    const record = await recordPrune(2, at(2).hash);
    expect(await log.verify()).toEqual([clean(3, 6, record.hash)]);
  });

  it("AuditLog.verify - a chain base does not excuse an entry that does not follow it", async () => {
    await section().batch([{ type: "del", key: key(1) }, { type: "del", key: key(2) }]);
    await store.section<ChainBase>("audit-base").put(key(3), { origin: "kz", epoch: 1, seq: 3, prev_hash: "a".repeat(64), why: "pruned" });
    const record = await recordPrune(2, "a".repeat(64));
    expect(await log.verify()).toEqual([broken(clean(3, 6, record.hash), 3, PREV_MISMATCH)]);
  });

  // Once the own entry 1 was gone, every base used to be trusted without a record: the own
  // chain and any relayed one could be shortened silently on a stopped root.
  it("AuditLog.verify - on a root, the own entry 1 and a relayed origin's 1..500 replaced by bases: both chains are bad", async () => {
    const childStore = await NodeStore.open(path.join(dir, "child"));
    const ala = await new AuditLog(childStore, "kz.ala", 1).appendMany(events(502));
    await childStore.close();
    expect((await log.ingest(ala, "site:kz.ala")).stored).toBe(502);
    const base = (origin: string, seq: number, prev: string) => ({ type: "put" as const, key: key(seq, 1, origin), value: { origin, epoch: 1, seq, prev_hash: prev, why: "pruned" as const } });
    await section().batch([...ala.slice(0, 500).map((e) => ({ type: "del" as const, key: key(e.seq, 1, "kz.ala") })), { type: "del", key: key(1) }]);
    await store.section<ChainBase>("audit-base").batch([base("kz.ala", 501, ala[499]!.hash), base("kz", 2, at(1).hash)]);
    expect(await log.verify()).toEqual([
      broken({ ...clean(2, 5, at(5).hash), entries: 4 }, 2, UNACCOUNTED_BASE),
      { origin: "kz.ala", epoch: 1, entries: 2, firstSeq: 501, lastSeq: 502, headHash: ala[501]!.hash, ok: false, badSeq: 501, reason: UNACCOUNTED_BASE },
    ]);
  });

  // The anchor is the parent's word on what this node held; losing the chains and the
  // head record together must not make the origin vanish from the report.
  it("AuditLog.verify - reports an anchored origin whose entries and head record were all deleted", async () => {
    await log.saveAnchors([{ origin: "kz", epoch: 1, seq: 5, hash: at(5).hash }]);
    await section().clear();
    await heads().del("kz");
    expect(await log.verify()).toEqual([
      {
        origin: "kz", epoch: 1, entries: 0, firstSeq: 0, lastSeq: 5, headHash: at(5).hash, ok: false, badSeq: 5,
        reason: "every entry up to 5, acknowledged by the parent, is missing, and its head record too",
      },
    ]);
  });

  // Bases sit outside the hash chain; one is trusted only when this node's own log
  // records the prune or re-anchor that made it.
  it("AuditLog.verify - a forged chain base does not hide deleted middle entries", async () => {
    await section().batch([{ type: "del", key: key(2) }, { type: "del", key: key(3) }]);
    await store.section<ChainBase>("audit-base").put(key(4), { origin: "kz", epoch: 1, seq: 4, prev_hash: at(3).hash, why: "pruned" });
    expect(await log.verify()).toEqual([broken({ ...clean(1, 5, at(5).hash), entries: 3 }, 4, UNACCOUNTED_BASE)]);
  });

  /** Entries of `origin` in `epoch`, correctly chained and hashed, written on another store: a forgery's material. */
  async function forgedChain(origin: string, epoch: number, evts: AuditEvent[]): Promise<AuditEntry[]> {
    const other = await NodeStore.open(path.join(dir, `forge-${origin}-${epoch}`));
    try {
      return await new AuditLog(other, origin, epoch).appendMany(evts);
    } finally {
      await other.close();
    }
  }
  const outside = (epoch: number, node: number, origin = "kz") =>
    `entries of epoch ${epoch} of ${origin}, but this node is epoch ${node}: they were added outside the log`;

  // The feed ships by head record and the head record was left alone: no ancestor would ever
  // see these entries, so the node's own verify must.
  it("AuditLog.verify - a forged own chain of a later epoch, head record untouched, is bad at its first seq", async () => {
    const forged = await forgedChain("kz", 2, events(3));
    await section().batch(forged.map((e) => ({ type: "put" as const, key: key(e.seq, 2), value: e })));
    expect(await log.verify()).toEqual([
      clean(1, 5, at(5).hash),
      { origin: "kz", epoch: 2, entries: 3, firstSeq: 1, lastSeq: 3, headHash: forged[2]!.hash, ok: false, badSeq: 1, reason: outside(2, 1) },
    ]);
    expect(await log.verify("kz.ala")).toEqual([]);
  });

  it("AuditLog.verify - a forged own chain of an earlier epoch without a head record is bad too", async () => {
    await store.close();
    store = await NodeStore.open(path.join(dir, "three"));
    const three = await new AuditLog(store, "kz", 3).appendMany(events(2));
    const forged = await forgedChain("kz", 2, events(1));
    await section().put(key(1, 2), forged[0]!);
    expect(await new AuditLog(store, "kz", 3).verify()).toEqual([
      { origin: "kz", epoch: 2, entries: 1, firstSeq: 1, lastSeq: 1, headHash: forged[0]!.hash, ok: false, badSeq: 1, reason: outside(2, 3) },
      { origin: "kz", epoch: 3, entries: 2, firstSeq: 1, lastSeq: 2, headHash: three[1]!.hash, ok: true },
    ]);
  });

  it("AuditLog.verify - the audit.prune record of a forged own chain does not vouch for a base of the real one", async () => {
    const forged = await forgedChain("kz", 2, [{
      actor: "node", action: "audit.prune", target: "kz", result: "ok", details: { epoch: 1, from: 1, to: 2, last_hash: at(2).hash },
    }]);
    await section().batch([
      { type: "del", key: key(1) },
      { type: "del", key: key(2) },
      { type: "put", key: key(1, 2), value: forged[0]! },
    ]);
    await store.section<ChainBase>("audit-base").put(key(3), { origin: "kz", epoch: 1, seq: 3, prev_hash: at(2).hash, why: "pruned" });
    expect(await log.verify()).toEqual([
      broken({ ...clean(3, 5, at(5).hash), entries: 3 }, 3, UNACCOUNTED_BASE),
      { origin: "kz", epoch: 2, entries: 1, firstSeq: 1, lastSeq: 1, headHash: forged[0]!.hash, ok: false, badSeq: 1, reason: outside(2, 1) },
    ]);
  });

  // A node's own log never spans epochs in one store (re-enrolment needs an empty
  // directory), but a relayed origin's does: the audit.epoch note written on ingest
  // records where each earlier epoch ended.
  it("AuditLog.verify - reports the deleted tail of a relayed origin's earlier epoch", async () => {
    const childStore = await NodeStore.open(path.join(dir, "child"));
    const one = await new AuditLog(childStore, "kz.ala", 1).appendMany(events(5));
    const two = await new AuditLog(childStore, "kz.ala", 2).appendMany(events(2));
    await childStore.close();
    expect((await log.ingest([...one, ...two], "site:kz.ala")).stored).toBe(7);
    await section().batch([{ type: "del", key: key(4, 1, "kz.ala") }, { type: "del", key: key(5, 1, "kz.ala") }]);
    expect(await log.verify("kz.ala")).toEqual([
      {
        origin: "kz.ala", epoch: 1, entries: 3, firstSeq: 1, lastSeq: 3, headHash: one[2]!.hash, ok: false, badSeq: 4,
        reason: "the epoch ended at entry 5; entries after 3 are missing",
      },
      { origin: "kz.ala", epoch: 2, entries: 2, firstSeq: 1, lastSeq: 2, headHash: two[1]!.hash, ok: true },
    ]);
  });
});
