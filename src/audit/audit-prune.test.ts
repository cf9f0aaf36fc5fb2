import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import { NodeStore } from "../store/node-store.ts";
import { canonicalJson, hashEntry } from "./audit-hash.ts";
import { type AuditEvent, AuditLog, type ChainBase } from "./audit-log.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const DAY_MS = 24 * 3600 * 1000;
const YEAR_MS = 365 * DAY_MS;
// The root's floor as prune computes it: seven years of 366 days, the safe side.
const SEVEN_YEARS_MS = 7 * 366 * DAY_MS;
const ADMIN = "user:admin";

let dir: string;
let store: NodeStore;
let log: AuditLog;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-audit-prune-"));
  store = await NodeStore.open(path.join(dir, "store"));
  log = new AuditLog(store, "kz", 1);
});

afterEach(async () => {
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function events(n: number, action = "vms.view_live"): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => ({ actor: "user:operator", action, target: `cam-${i + 1}`, result: "ok" }));
}

const anchor = (e: AuditEntry) => ({ origin: e.origin, epoch: e.epoch, seq: e.seq, hash: e.hash });
/** `n` entries of `site` written on its own node (another store) with its clock at `timeMs`. */
async function relayedEntries(site: string, n: number, timeMs: number): Promise<AuditEntry[]> {
  const childStore = await NodeStore.open(path.join(dir, site));
  try {
    return await new AuditLog(childStore, site, 1).appendMany(events(n), timeMs);
  } finally {
    await childStore.close();
  }
}

const bases = () => store.section<ChainBase>("audit-base").values().all();
const seqs = async (site = "kz") => (await log.list({ site })).filter((e) => e.origin === site).map((e) => e.seq);

describe("AuditLog.prune", () => {
  it("AuditLog.prune - deletes only anchored entries past retention, keeps a base, audits it, verify stays ok", async () => {
    const old = await log.appendMany(events(3), NOW - 30 * DAY_MS);
    const young = await log.appendMany(events(2), NOW - DAY_MS);
    await log.saveAnchors([anchor(young[0]!)]);
    const change = vi.fn();
    log.on("change", change);

    const deleted = await log.prune({ nowMs: NOW, retentionMs: 10 * DAY_MS, isRoot: false, actor: ADMIN });

    expect(deleted).toBe(3);
    expect(await seqs()).toEqual([4, 5, 6]);
    expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 4, prev_hash: old[2]!.hash, why: "pruned" }]);
    const unhashed = {
      origin: "kz", epoch: 1, seq: 6, time_ms: NOW, actor: ADMIN, action: "audit.prune", target: "kz", result: "ok",
      details: canonicalJson({ epoch: 1, from: 1, to: 3, last_hash: old[2]!.hash }), prev_hash: young[1]!.hash,
    };
    const pruneEntry = { ...unhashed, hash: hashEntry(unhashed) };
    expect(await log.list({ action: "audit.prune" })).toEqual([pruneEntry]);
    expect(pruneEntry.details).toBe(`{"epoch":1,"from":1,"last_hash":"${old[2]!.hash}","to":3}`);
    expect(change).toHaveBeenCalledTimes(1);
    expect(await log.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 3, firstSeq: 4, lastSeq: 6, headHash: pruneEntry.hash, ok: true },
    ]);
  });

  it("AuditLog.prune - never deletes unanchored entries, however old", async () => {
    await log.appendMany(events(5), NOW - 10 * YEAR_MS);
    expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(0);
    expect(await seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(await bases()).toEqual([]);
    expect(await log.list({ action: "audit" })).toEqual([]);
  });

  it("AuditLog.prune - stops at the anchor even when later entries are old", async () => {
    const entries = await log.appendMany(events(5), NOW - 30 * DAY_MS);
    await log.saveAnchors([anchor(entries[1]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(2);
    expect(await seqs()).toEqual([3, 4, 5, 6]);
    expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 3, prev_hash: entries[1]!.hash, why: "pruned" }]);
  });

  it("AuditLog.prune - keeps an entry exactly at the cutoff", async () => {
    const entries = [
      ...(await log.appendMany(events(1), NOW - DAY_MS - 1)),
      ...(await log.appendMany(events(1), NOW - DAY_MS)),
    ];
    await log.saveAnchors([anchor(entries[1]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(1);
    expect(await seqs()).toEqual([2, 3]);
  });

  it("AuditLog.prune - deletes only a prefix: an old entry after a young one stays", async () => {
    const entries = [
      ...(await log.appendMany(events(1), NOW - 30 * DAY_MS)),
      ...(await log.appendMany(events(1), NOW - DAY_MS)),
      ...(await log.appendMany(events(1), NOW - 30 * DAY_MS)),
    ];
    await log.saveAnchors([anchor(entries[2]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: 10 * DAY_MS, isRoot: false, actor: ADMIN })).toBe(1);
    expect(await seqs()).toEqual([2, 3, 4]);
    expect((await log.verify())[0]).toMatchObject({ firstSeq: 2, lastSeq: 4, ok: true });
  });

  it("AuditLog.prune - an anchor in a later epoch covers every entry of the earlier one", async () => {
    const one = await log.appendMany(events(3), NOW - 30 * DAY_MS);
    const log2 = new AuditLog(store, "kz", 2);
    const two = await log2.appendMany(events(2), NOW - 30 * DAY_MS);
    await log2.saveAnchors([anchor(two[0]!)]);

    expect(await log2.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(4);

    expect((await log2.list()).map((e) => [e.epoch, e.seq, e.action])).toEqual([
      [2, 2, "vms.view_live"], [2, 3, "audit.prune"], [2, 4, "audit.prune"],
    ]);
    expect((await log2.list({ action: "audit.prune" })).map((e) => JSON.parse(e.details))).toEqual([
      { epoch: 1, from: 1, to: 3, last_hash: one[2]!.hash },
      { epoch: 2, from: 1, to: 1, last_hash: two[0]!.hash },
    ]);
    expect(await bases()).toEqual([
      { origin: "kz", epoch: 1, seq: 4, prev_hash: one[2]!.hash, why: "pruned" },
      { origin: "kz", epoch: 2, seq: 2, prev_hash: two[0]!.hash, why: "pruned" },
    ]);
    expect(await log2.verify()).toEqual([
      { origin: "kz", epoch: 2, entries: 3, firstSeq: 2, lastSeq: 4, headHash: (await log2.heads())[0]!.hash, ok: true },
    ]);
  });

  it("AuditLog.prune - a whole acknowledged chain of its own goes, the prune entry carries it on", async () => {
    const entries = await log.appendMany(events(5), NOW - 1000);
    await log.saveAnchors([anchor(entries[4]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(5);
    expect(await seqs()).toEqual([6]);
    expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 6, prev_hash: entries[4]!.hash, why: "pruned" }]);
    expect((await log.verify())[0]).toMatchObject({ entries: 1, firstSeq: 6, lastSeq: 6, ok: true });
  });

  it("AuditLog.prune - pruning again continues from the previous base", async () => {
    const entries = await log.appendMany(events(5), NOW - 30 * DAY_MS);
    await log.saveAnchors([anchor(entries[1]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(2);
    await log.saveAnchors([anchor(entries[3]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(2);
    expect(await seqs()).toEqual([5, 6, 7]);
    expect((await log.list({ action: "audit.prune" })).map((e) => JSON.parse(e.details))).toEqual([
      { epoch: 1, from: 1, to: 2, last_hash: entries[1]!.hash },
      { epoch: 1, from: 3, to: 4, last_hash: entries[3]!.hash },
    ]);
    expect((await log.verify())[0]).toMatchObject({ entries: 3, firstSeq: 5, lastSeq: 7, ok: true });
  });

  it("AuditLog.prune - prunes relayed origins by their own anchors and audits each chain", async () => {
    const child = new AuditLog(store, "kz.ala", 1);
    const ala = await child.appendMany(events(3), NOW - 30 * DAY_MS);
    const own = await log.appendMany(events(2), NOW - 30 * DAY_MS);
    await log.saveAnchors([anchor(ala[1]!), anchor(own[0]!)]);

    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(3);

    expect(await seqs("kz.ala")).toEqual([3]);
    expect(await seqs("kz")).toEqual([2, 3, 4]);
    const audited = await log.list({ action: "audit.prune" });
    expect(audited.map((e) => [e.origin, e.seq, e.target, JSON.parse(e.details)])).toEqual([
      ["kz", 3, "kz.ala", { epoch: 1, from: 1, to: 2, last_hash: ala[1]!.hash }],
      ["kz", 4, "kz", { epoch: 1, from: 1, to: 1, last_hash: own[0]!.hash }],
    ]);
    expect((await log.verify()).map((r) => [r.origin, r.firstSeq, r.lastSeq, r.ok])).toEqual([["kz", 2, 4, true], ["kz.ala", 3, 3, true]]);
  });

  // A quiet child's whole chain may go; the base and the audit.prune note still prove it.
  it("AuditLog.prune - verify stays ok after a relayed origin's whole chain was pruned", async () => {
    const child = new AuditLog(store, "kz.ala", 1);
    const ala = await child.appendMany(events(3), NOW - 30 * DAY_MS);
    await log.saveAnchors([anchor(ala[2]!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(3);
    expect(await log.verify("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 1, entries: 0, firstSeq: 0, lastSeq: 3, headHash: ala[2]!.hash, ok: true },
    ]);
  });

  // The own log pruned past the record of a relayed origin's base: that base is trusted
  // because the own chain itself verifies from a recorded base, and only then.
  async function prunedPastRecords() {
    const ala = await new AuditLog(store, "kz.ala", 1).appendMany(events(3), NOW - 30 * DAY_MS);
    const own = await log.appendMany(events(2), NOW - 30 * DAY_MS);
    await log.saveAnchors([anchor(ala[1]!), anchor(own[1]!)]);
    vi.setSystemTime(NOW - 20 * DAY_MS);
    expect(await log.prune({ nowMs: NOW - 20 * DAY_MS, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(4);
    vi.setSystemTime(NOW);
    // Entries 3 and 4 of kz record both prunes; the second prune deletes them and records its own base.
    const records = (await log.list({ site: "kz" })).filter((e) => e.origin === "kz");
    await log.saveAnchors([anchor(records.at(-1)!)]);
    expect(await log.prune({ nowMs: NOW, retentionMs: 10 * DAY_MS, isRoot: false, actor: ADMIN })).toBe(2);
    expect(await seqs("kz")).toEqual([5]);
    expect(await seqs("kz.ala")).toEqual([3]);
    const [kept] = await log.list({ site: "kz", action: "audit.prune" });
    expect(kept).toMatchObject({ origin: "kz", seq: 5, target: "kz", details: `{"epoch":1,"from":3,"last_hash":"${records.at(-1)!.hash}","to":4}` });
    return { ala, kept: kept! };
  }

  it("AuditLog.verify - a relayed base whose record was pruned away is trusted while the own chain verifies from its recorded base", async () => {
    const { ala, kept } = await prunedPastRecords();
    expect(await log.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 1, firstSeq: 5, lastSeq: 5, headHash: kept.hash, ok: true },
      { origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 3, lastSeq: 3, headHash: ala[2]!.hash, ok: true },
    ]);
  });

  it("AuditLog.verify - an own base without its record: the own chain is bad, and relayed bases without records are no longer trusted", async () => {
    const { ala, kept } = await prunedPastRecords();
    // The own base moved on by one, the entry before it deleted: no audit.prune accounts for it.
    const next = await log.append(events(1)[0]!);
    const key = (seq: number) => `kz|${"1".padStart(10, "0")}|${String(seq).padStart(16, "0")}`;
    await store.section<AuditEntry>("audit-entry").del(key(5));
    await store.section<ChainBase>("audit-base").batch([
      { type: "del", key: key(5) },
      { type: "put", key: key(6), value: { origin: "kz", epoch: 1, seq: 6, prev_hash: kept.hash, why: "pruned" } },
    ]);
    const unaccounted = "a restart point is recorded here that this node's own log does not account for: entries before it may have been removed";
    expect(await log.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 1, firstSeq: 6, lastSeq: 6, headHash: next.hash, ok: false, badSeq: 6, reason: unaccounted },
      { origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 3, lastSeq: 3, headHash: ala[2]!.hash, ok: false, badSeq: 3, reason: unaccounted },
    ]);
  });

  describe("AuditLog.prune - goes by key and stops at a bad value", () => {
    const key = (seq: number) => `kz|${"1".padStart(10, "0")}|${String(seq).padStart(16, "0")}`;
    const texts = () => store.textSection("audit-entry");
    const storedKeys = async () => (await texts().keys().all()).map((k) => Number(k.slice(-16)));
    const pruneRecords = async () => (await log.list({ action: "audit.prune" })).map((e) => JSON.parse(e.details));

    // A JSON sublevel's iterator throws on such a value: prune used to fail with
    // "Iterator could not decode data", every hour, and list likewise.
    it("AuditLog.prune - a value that is not JSON: list skips it, prune deletes the entries before it only", async () => {
      const entries = await log.appendMany(events(15), NOW - 30 * DAY_MS);
      await log.saveAnchors([anchor(entries[14]!)]);
      await texts().put(key(5), "not json{");

      expect(await log.list({ site: "kz" })).toEqual(entries.filter((e) => e.seq !== 5));
      expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(4);

      expect(await storedKeys()).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
      expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 5, prev_hash: entries[3]!.hash, why: "pruned" }]);
      expect(await pruneRecords()).toEqual([{ epoch: 1, from: 1, to: 4, last_hash: entries[3]!.hash }]);
      expect(await log.verify()).toEqual([{
        origin: "kz", epoch: 1, entries: 12, firstSeq: 5, lastSeq: 16, headHash: (await log.heads())[0]!.hash,
        ok: false, badSeq: 5, reason: "entry 5 cannot be read: not valid JSON",
      }]);
      // The next prune stops at the same place and deletes nothing more.
      expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(0);
    });

    // `{}` used to make list fail with "Invalid time value" and prune delete 1 and 3..15 around
    // it, recording a clean range 1..15.
    it("AuditLog.prune - a value that is no entry at key 2: list skips it, prune deletes entry 1 only and records 1..1", async () => {
      const entries = await log.appendMany(events(15), NOW - 30 * DAY_MS);
      await log.saveAnchors([anchor(entries[14]!)]);
      await texts().put(key(2), "{}");

      const listed = await log.list();
      expect(listed.map((e) => e.seq)).toEqual([1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
      expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(1);

      expect(await storedKeys()).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
      expect(await texts().get(key(2))).toBe("{}");
      expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 2, prev_hash: entries[0]!.hash, why: "pruned" }]);
      expect(await pruneRecords()).toEqual([{ epoch: 1, from: 1, to: 1, last_hash: entries[0]!.hash }]);
      expect((await log.verify())[0]).toMatchObject({ firstSeq: 2, lastSeq: 16, ok: false, badSeq: 2, reason: "entry 2 cannot be read: not an audit entry" });
    });

    it("AuditLog.prune - a value under another entry's key stays with everything after it; list skips it", async () => {
      const entries = await log.appendMany(events(6), NOW - 30 * DAY_MS);
      await log.saveAnchors([anchor(entries[5]!)]);
      // Entry 3 copied over entry 4: its value says seq 3, its key says 4.
      await store.section<AuditEntry>("audit-entry").put(key(4), entries[2]!);

      expect(await log.list()).toEqual([entries[0], entries[1], entries[2], entries[4], entries[5]]);
      expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(3);

      expect(await storedKeys()).toEqual([4, 5, 6, 7]);
      expect(await pruneRecords()).toEqual([{ epoch: 1, from: 1, to: 3, last_hash: entries[2]!.hash }]);
      expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 4, prev_hash: entries[2]!.hash, why: "pruned" }]);
    });

    it("AuditLog.prune - stops at a gap in the keys, so that the recorded range is what was deleted", async () => {
      const entries = await log.appendMany(events(6), NOW - 30 * DAY_MS);
      await log.saveAnchors([anchor(entries[5]!)]);
      await texts().del(key(3));

      expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: false, actor: ADMIN })).toBe(2);

      expect(await storedKeys()).toEqual([4, 5, 6, 7]);
      expect(await pruneRecords()).toEqual([{ epoch: 1, from: 1, to: 2, last_hash: entries[1]!.hash }]);
    });
  });

  it("AuditLog.prune - a root keeps entries younger than seven years even with retention 0", async () => {
    const entries = await log.appendMany(events(3), NOW - 6 * YEAR_MS);
    expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: true, actor: ADMIN })).toBe(0);
    expect(await seqs()).toEqual([1, 2, 3]);
    expect(entries).toHaveLength(3);
    expect(await log.list({ action: "audit" })).toEqual([]);
  });

  it("AuditLog.prune - a root deletes entries older than seven years without any anchor", async () => {
    const entries = [
      ...(await log.appendMany(events(1), NOW - SEVEN_YEARS_MS - 1)),
      ...(await log.appendMany(events(1), NOW - SEVEN_YEARS_MS)),
      ...(await log.appendMany(events(1), NOW - DAY_MS)),
    ];
    expect(await log.anchors()).toEqual(new Map());
    expect(await log.prune({ nowMs: NOW, retentionMs: 0, isRoot: true, actor: ADMIN })).toBe(1);
    expect(await seqs()).toEqual([2, 3, 4]);
    expect(await bases()).toEqual([{ origin: "kz", epoch: 1, seq: 2, prev_hash: entries[0]!.hash, why: "pruned" }]);
    expect((await log.verify())[0]).toMatchObject({ firstSeq: 2, lastSeq: 4, ok: true });
  });

  it("AuditLog.prune - a root with a retention above seven years uses it", async () => {
    await log.appendMany(events(1), NOW - 8 * YEAR_MS);
    await log.appendMany(events(1), NOW - 11 * YEAR_MS);
    expect(await log.prune({ nowMs: NOW, retentionMs: 10 * YEAR_MS, isRoot: true, actor: ADMIN })).toBe(0);
    // A retention below the floor of 7 × 366 days gives way to the floor; both entries are older.
    expect(await log.prune({ nowMs: NOW, retentionMs: 7 * YEAR_MS, isRoot: true, actor: ADMIN })).toBe(2);
    expect(await seqs()).toEqual([3]);
  });
  // An origin's clock may be years off: a relayed entry is as old as the later of its time and its receipt here.
  it("AuditLog.prune - a root keeps relayed entries stamped 2015 for seven years from their receipt", async () => {
    const relayed = await relayedEntries("kz.ala", 3, Date.UTC(2015, 0, 1));
    expect((await log.ingest(relayed, "site:kz.ala")).stored).toBe(3);
    // The receipt time is kept beside the entries: what is listed and shipped up is unchanged.
    expect(await log.list({ site: "kz.ala" })).toEqual(relayed);
    expect(await log.entriesAfter("kz.ala", 0, 0, 10)).toEqual(relayed);
    expect(await log.prune({ nowMs: NOW + 10 * 60_000, retentionMs: DAY_MS, isRoot: true, actor: ADMIN })).toBe(0);
    expect(await log.prune({ nowMs: NOW + SEVEN_YEARS_MS, retentionMs: DAY_MS, isRoot: true, actor: ADMIN })).toBe(0);
    expect(await seqs("kz.ala")).toEqual([1, 2, 3]);
    expect(await log.prune({ nowMs: NOW + SEVEN_YEARS_MS + 1, retentionMs: DAY_MS, isRoot: true, actor: ADMIN })).toBe(3);
    expect(await seqs("kz.ala")).toEqual([]);
    expect(await store.section<number>("audit-received").keys().all()).toEqual([]);
  });

  it("AuditLog.prune - a child keeps relayed entries stamped 2015 for its retention from their receipt; its own entries by their time", async () => {
    const relayed = await relayedEntries("kz.ala", 4, Date.UTC(2015, 0, 1));
    const own = await log.appendMany(events(2), Date.UTC(2015, 0, 1));
    await log.ingest(relayed.slice(0, 3), "site:kz.ala");
    await log.saveAnchors([anchor(relayed[2]!), anchor(own[1]!)]);
    expect(await log.prune({ nowMs: NOW + 60_000, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(2);
    expect(await seqs("kz")).toEqual([3]);
    expect(await seqs("kz.ala")).toEqual([1, 2, 3]);
    // Received exactly one retention ago: still kept.
    expect(await log.prune({ nowMs: NOW + DAY_MS, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(0);

    vi.setSystemTime(NOW + 2 * DAY_MS);
    await log.ingest([relayed[3]!], "site:kz.ala");
    await log.saveAnchors([anchor(relayed[3]!)]);
    expect(await log.prune({ nowMs: NOW + 2 * DAY_MS, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(3);
    expect(await seqs("kz.ala")).toEqual([4]);
    // One receipt mark per chain and batch, at its last entry; the first batch's went with it.
    expect(await store.section<number>("audit-received").iterator().all()).toEqual([["kz.ala|0000000001|0000000000000004", NOW + 2 * DAY_MS]]);
    expect(await log.prune({ nowMs: NOW + 3 * DAY_MS + 1, retentionMs: DAY_MS, isRoot: false, actor: ADMIN })).toBe(1);
    expect(await seqs("kz.ala")).toEqual([]);
    expect(await store.section<number>("audit-received").keys().all()).toEqual([]);
    expect((await log.verify()).map((r) => [r.origin, r.ok])).toEqual([["kz", true], ["kz.ala", true]]);
  });
});
