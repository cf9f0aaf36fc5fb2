import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import { NodeStore } from "../store/node-store.ts";
import { canonicalJson, GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import { type AuditEvent, AuditLog, type ChainBase, type Quarantine } from "./audit-log.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const CHILD_TIME = NOW - 60_000;
const ACTOR = "site:kz.ala";

let dir: string;
let stores: NodeStore[];
let parentStore: NodeStore;
let parent: AuditLog;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-audit-ingest-"));
  stores = [];
  parentStore = await openStore("kz");
  parent = new AuditLog(parentStore, "kz", 1);
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.allSettled(stores.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function openStore(name: string): Promise<NodeStore> {
  const store = await NodeStore.open(path.join(dir, name));
  stores.push(store);
  return store;
}

function events(...actions: string[]): AuditEvent[] {
  return actions.map((action) => ({ actor: "user:admin", action, target: "kz.ala", result: "ok" }));
}

/** `n` entries written by a child log `site` (its own store) in `epoch`, continuing its chain. */
async function childEntries(site: string, n: number, epoch = 1, store?: NodeStore): Promise<AuditEntry[]> {
  const log = new AuditLog(store ?? (await openStore(`${site}-${epoch}-${stores.length}`)), site, epoch);
  return log.appendMany(events(...Array.from({ length: n }, (_, i) => `test.e${epoch}s${i + 1}`)), CHILD_TIME);
}

/** A forged entry: fields changed and the hash recomputed, so only the chain can tell. */
function forge(entry: AuditEntry, changes: Partial<AuditEntry>): AuditEntry {
  const { hash: _hash, ...rest } = { ...entry, ...changes };
  return { ...rest, hash: hashEntry(rest) };
}

const head = (e: AuditEntry) => ({ origin: e.origin, epoch: e.epoch, seq: e.seq, hash: e.hash });

/** The quarantine expected for the refused entry `refused` (its hash is checked where the entry is known). */
function quarantine(origin: string, epoch: number, seq: number, reason: string, hash: string = expect.any(String) as unknown as string): Quarantine {
  return { origin, epoch, seq, hash, reason, atMs: NOW };
}

describe("AuditLog.ingest - clean chains", () => {
  it("AuditLog.ingest - stores a clean chain and returns the new head", async () => {
    const entries = await childEntries("kz.ala", 3);
    const change = vi.fn();
    parent.on("change", change);
    const result = await parent.ingest(entries, ACTOR);
    expect(result).toEqual({ stored: 3, heads: [head(entries[2]!)], quarantined: [], newlyQuarantined: [] });
    expect(await parent.list({ site: "kz.ala" })).toEqual(entries);
    expect(await parent.headsIn("kz.ala")).toEqual([head(entries[2]!)]);
    expect(change).toHaveBeenCalledTimes(1);
    expect(await parent.list({ site: "kz", action: "audit" })).toEqual([]);
  });

  it("AuditLog.ingest - skips a resend: stored=0, no heads, no change", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest(entries, ACTOR);
    const change = vi.fn();
    parent.on("change", change);
    expect(await parent.ingest(entries, ACTOR)).toEqual({ stored: 0, heads: [], quarantined: [], newlyQuarantined: [] });
    expect(change).not.toHaveBeenCalled();
    expect(await parent.list({ site: "kz.ala" })).toEqual(entries);
  });

  it("AuditLog.ingest - stores only the new tail of an overlapping resend", async () => {
    const childStore = await openStore("kz.ala");
    const first = await childEntries("kz.ala", 3, 1, childStore);
    const more = await childEntries("kz.ala", 2, 1, childStore);
    await parent.ingest(first, ACTOR);
    const result = await parent.ingest([first[1]!, first[2]!, ...more], ACTOR);
    expect(result).toEqual({ stored: 2, heads: [head(more[1]!)], quarantined: [], newlyQuarantined: [] });
    expect((await parent.list({ site: "kz.ala" })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("AuditLog.ingest - follows a child into a new epoch starting at 1", async () => {
    const childStore = await openStore("kz.ala");
    const one = await childEntries("kz.ala", 2, 1, childStore);
    const two = await childEntries("kz.ala", 2, 2, childStore);
    const result = await parent.ingest([...one, ...two], ACTOR);
    expect(result).toEqual({ stored: 4, heads: [head(two[1]!)], quarantined: [], newlyQuarantined: [] });
    const reports = await parent.verify("kz.ala");
    expect(reports.map((r) => [r.epoch, r.entries, r.ok])).toEqual([[1, 2, true], [2, 2, true]]);
  });

  it("AuditLog.ingest - keeps several origins apart in one batch", async () => {
    const ala = await childEntries("kz.ala", 2);
    const metro = await childEntries("kz.ala.metro-01", 1);
    const result = await parent.ingest([ala[0]!, metro[0]!, ala[1]!], ACTOR);
    expect(result).toEqual({ stored: 3, heads: [head(ala[1]!), head(metro[0]!)], quarantined: [], newlyQuarantined: [] });
  });

  // The earlier copy is still a pending batch op, not yet in the store.
  it("AuditLog.ingest - skips an entry repeated inside one batch instead of quarantining", async () => {
    const entries = await childEntries("kz.ala", 2);
    const result = await parent.ingest([entries[0]!, entries[1]!, entries[1]!], ACTOR);
    expect(result).toEqual({ stored: 2, heads: [head(entries[1]!)], quarantined: [], newlyQuarantined: [] });
  });
});

describe("AuditLog.ingest - quarantine", () => {
  it("AuditLog.ingest - quarantines an edited entry (hash mismatch)", async () => {
    const entries = await childEntries("kz.ala", 3);
    const edited = { ...entries[1]!, target: "kz.ast" };
    const result = await parent.ingest([entries[0]!, edited, entries[2]!], ACTOR);
    const q = quarantine("kz.ala", 1, 2, "entry 2 was changed: its hash does not match its content");
    expect(result).toEqual({ stored: 1, heads: [head(entries[0]!)], quarantined: [q], newlyQuarantined: [q] });
    expect(await parent.quarantines()).toEqual([q]);
    expect((await parent.list({ site: "kz.ala" })).map((e) => e.seq)).toEqual([1]);
  });

  it("AuditLog.ingest - quarantines a gap (skipped seq)", async () => {
    const entries = await childEntries("kz.ala", 4);
    await parent.ingest(entries.slice(0, 2), ACTOR);
    const result = await parent.ingest([entries[3]!], ACTOR);
    const q = quarantine("kz.ala", 1, 4, "gap: expected entry 3, got 4");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
  });

  it("AuditLog.ingest - quarantines a reorder (older epoch after newer)", async () => {
    const childStore = await openStore("kz.ala");
    const one = await childEntries("kz.ala", 3, 1, childStore);
    const two = await childEntries("kz.ala", 1, 2, childStore);
    await parent.ingest([one[0]!, one[1]!, two[0]!], ACTOR);
    const result = await parent.ingest([one[2]!], ACTOR);
    const q = quarantine("kz.ala", 1, 3, "reordered: entry of epoch 1 after epoch 2 began");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
  });

  it("AuditLog.ingest - quarantines a fork: same seq, different hash", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest(entries, ACTOR);
    const forked = forge(entries[1]!, { target: "kz.ast" });
    const result = await parent.ingest([forked], ACTOR);
    const q = quarantine("kz.ala", 1, 2, "fork: entry 2 differs from the one already held");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
    expect(await parent.list({ site: "kz.ala" })).toEqual(entries);
  });

  it("AuditLog.ingest - quarantines a fork: previous hash does not match the head", async () => {
    // Two copies of kz.ala (say one restored from a backup) write the same first entry, then diverge.
    const storeA = await openStore("kz.ala-a");
    const storeB = await openStore("kz.ala-b");
    const [a1] = await childEntries("kz.ala", 1, 1, storeA);
    const [b1] = await childEntries("kz.ala", 1, 1, storeB);
    expect(b1).toEqual(a1);
    const logA = new AuditLog(storeA, "kz.ala", 1);
    const logB = new AuditLog(storeB, "kz.ala", 1);
    const [a2] = await logA.appendMany(events("test.a2"), CHILD_TIME);
    const [b2, b3] = await logB.appendMany(events("test.b2", "test.b3"), CHILD_TIME);
    await parent.ingest([a1!, a2!], ACTOR);
    const result = await parent.ingest([b3!], ACTOR);
    const q = quarantine("kz.ala", 1, 3, "fork: entry 3 does not follow the held head 2 (previous hash differs)");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
    expect(b2!.hash).not.toBe(a2!.hash);
  });

  it("AuditLog.ingest - quarantines a new epoch that does not start at 1", async () => {
    const childStore = await openStore("kz.ala");
    const one = await childEntries("kz.ala", 2, 1, childStore);
    const two = await childEntries("kz.ala", 2, 2, childStore);
    await parent.ingest(one, ACTOR);
    const result = await parent.ingest([two[1]!], ACTOR);
    const q = quarantine("kz.ala", 2, 2, "gap: epoch 2 must start at entry 1, got 2");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
  });

  it("AuditLog.ingest - quarantines a first entry of an unknown origin that is not entry 1", async () => {
    const entries = await childEntries("kz.ala", 2);
    const result = await parent.ingest([entries[1]!], ACTOR);
    const q = quarantine("kz.ala", 1, 2, "gap: epoch 1 must start at entry 1, got 2");
    expect(result).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
  });

  it("AuditLog.ingest - quarantines an entry 1 whose previous hash is not GENESIS_HASH", async () => {
    const [first] = await childEntries("kz.ala", 1);
    const forged = forge(first!, { prev_hash: "1".repeat(64) });
    const result = await parent.ingest([forged], ACTOR);
    const q = quarantine("kz.ala", 1, 1, "entry 1 of epoch 1 does not start a chain: its previous hash is not the genesis hash");
    expect(result.newlyQuarantined).toEqual([q]);
  });

  it("AuditLog.ingest - stores nothing more from a quarantined origin, other origins still", async () => {
    const ala = await childEntries("kz.ala", 4);
    const ast = await childEntries("kz.ast", 3);
    const first = await parent.ingest([ala[0]!, ala[2]!, ast[0]!, ala[1]!, ast[1]!], ACTOR);
    const q = quarantine("kz.ala", 1, 3, "gap: expected entry 2, got 3");
    expect(first).toEqual({ stored: 3, heads: [head(ala[0]!), head(ast[1]!)], quarantined: [q], newlyQuarantined: [q] });

    const second = await parent.ingest([ala[1]!, ala[2]!, ala[3]!, ast[2]!], ACTOR);
    expect(second).toEqual({ stored: 1, heads: [head(ast[2]!)], quarantined: [q], newlyQuarantined: [] });
    expect((await parent.list({ site: "kz.ala" })).map((e) => e.seq)).toEqual([1]);
    expect((await parent.list({ site: "kz.ast" })).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await parent.quarantines()).toEqual([q]);
  });

  it("AuditLog.ingest - appends one audit.quarantine alarm to its own log, only for the first batch", async () => {
    const entries = await childEntries("kz.ala", 3);
    const change = vi.fn();
    parent.on("change", change);
    await parent.ingest([entries[0]!, entries[2]!], ACTOR);
    // The stored entry and the alarm land in one batch, so one change.
    expect(change).toHaveBeenCalledTimes(1);
    await parent.ingest([entries[2]!], ACTOR);
    const alarms = await parent.list({ site: "kz", action: "audit" });
    const unhashed = {
      origin: "kz",
      epoch: 1,
      seq: 1,
      time_ms: NOW,
      actor: ACTOR,
      action: "audit.quarantine",
      target: "kz.ala",
      result: "refused",
      details: canonicalJson({ epoch: 1, seq: 3, reason: "gap: expected entry 2, got 3" }),
      prev_hash: GENESIS_HASH,
    };
    expect(alarms).toEqual([{ ...unhashed, hash: hashEntry(unhashed) }]);
    expect(alarms[0]!.details).toBe('{"epoch":1,"reason":"gap: expected entry 2, got 3","seq":3}');
    expect(await parent.headsIn("kz")).toContainEqual({ origin: "kz", epoch: 1, seq: 1, hash: alarms[0]!.hash });
  });

  it("AuditLog.ingest - quarantines the caller's own origin in an epoch other than its enrolled one", async () => {
    // A store-level attacker on kz.e1 (enrolled at epoch 1) wrote a chain of its own under epoch 2.
    const childStore = await openStore("kz.e1");
    const one = await childEntries("kz.e1", 3, 1, childStore);
    const two = await childEntries("kz.e1", 2, 2, childStore);
    const caller = { origin: "kz.e1", epoch: 1 };
    const actor = "site:kz.e1";
    expect(await parent.ingest(one.slice(0, 2), actor, caller)).toEqual({ stored: 2, heads: [head(one[1]!)], quarantined: [], newlyQuarantined: [] });
    const result = await parent.ingest([one[2]!, ...two], actor, caller);
    const reason = "epoch 2 is not the enrolled epoch 1 of kz.e1";
    const q = quarantine("kz.e1", 2, 1, reason, two[0]!.hash);
    expect(result).toEqual({ stored: 1, heads: [head(one[2]!)], quarantined: [q], newlyQuarantined: [q] });
    expect(await parent.quarantines()).toEqual([q]);
    expect(await parent.headsIn("kz.e1")).toEqual([head(one[2]!)]);
    expect((await parent.list({ site: "kz.e1" })).map((e) => [e.epoch, e.seq])).toEqual([[1, 1], [1, 2], [1, 3]]);
    const own = await parent.list({ site: "kz", action: "audit" });
    expect(own.map((e) => [e.seq, e.actor, e.action, e.target, e.result, e.details])).toEqual([
      [1, actor, "audit.quarantine", "kz.e1", "refused", canonicalJson({ epoch: 2, seq: 1, reason })],
    ]);
    // The link does not flap: the next batch is answered, with the origin still quarantined.
    expect(await parent.ingest(two, actor, caller)).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [] });
  });

  it("AuditLog.ingest - the enrolled epoch binds only the caller's own origin, not deeper ones", async () => {
    const deeper = await childEntries("kz.e1.cam", 2, 2);
    const result = await parent.ingest(deeper, "site:kz.e1", { origin: "kz.e1", epoch: 1 });
    expect(result).toEqual({ stored: 2, heads: [head(deeper[1]!)], quarantined: [], newlyQuarantined: [] });
    const own = await childEntries("kz.e1", 1, 3);
    expect(await parent.ingest(own, "site:kz.e1", { origin: "kz.e1", epoch: 3 })).toEqual({
      stored: 1, heads: [head(own[0]!)], quarantined: [], newlyQuarantined: [],
    });
  });

  it("AuditLog.ingest - quarantine survives a reopened log", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest([entries[1]!], ACTOR);
    const reopened = new AuditLog(parentStore, "kz", 1);
    const result = await reopened.ingest([entries[0]!], ACTOR);
    expect(result.stored).toBe(0);
    expect(result.quarantined.map((q) => q.origin)).toEqual(["kz.ala"]);
    expect(result.newlyQuarantined).toEqual([]);
  });
});

describe("AuditLog.resolve", () => {
  it("AuditLog.resolve - returns false for an origin that is not quarantined, and audits nothing", async () => {
    const entries = await childEntries("kz.ala", 1);
    await parent.ingest(entries, ACTOR);
    expect(await parent.resolve("kz.ala", "user:admin")).toBe(false);
    expect(await parent.resolve("kz.nowhere", "user:admin")).toBe(false);
    expect(await parent.list({ site: "kz", action: "audit" })).toEqual([]);
  });

  it("AuditLog.resolve - lifts the quarantine, accepts the refused entry as a new anchor, records a resolved base, verify is ok", async () => {
    const entries = await childEntries("kz.ala", 5);
    await parent.ingest(entries.slice(0, 3), ACTOR);
    const q = quarantine("kz.ala", 1, 5, "gap: expected entry 4, got 5", entries[4]!.hash);
    expect((await parent.ingest([entries[4]!], ACTOR)).newlyQuarantined).toEqual([q]);

    expect(await parent.resolve("kz.ala", "user:admin")).toBe(true);
    expect(await parent.quarantines()).toEqual([]);
    const resolved = await parent.list({ site: "kz", action: "audit.resolve" });
    expect(resolved.map((e) => [e.seq, e.actor, e.target, e.result, e.details])).toEqual([
      [2, "user:admin", "kz.ala", "ok", canonicalJson({ ...q, anchor_seq: 5 })],
    ]);
    expect(resolved[0]!.details).toBe(
      `{"anchor_seq":5,"atMs":${NOW},"epoch":1,"hash":"${entries[4]!.hash}","origin":"kz.ala","reason":"gap: expected entry 4, got 5","seq":5}`,
    );
    // The head record does not move on resolve, and its flag does not leak out.
    expect(await parent.headsIn("kz.ala")).toEqual([head(entries[2]!)]);

    const result = await parent.ingest([entries[4]!], ACTOR);
    expect(result).toEqual({ stored: 1, heads: [head(entries[4]!)], quarantined: [], newlyQuarantined: [] });
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 5, prev_hash: entries[3]!.hash, why: "resolved" },
    ]);

    const reports = await parent.verify();
    const own = await parent.list({ site: "kz", action: "audit" });
    expect(own.map((e) => e.action)).toEqual(["audit.quarantine", "audit.resolve", "audit.reanchor"]);
    expect(reports).toEqual([
      { origin: "kz", epoch: 1, entries: 3, firstSeq: 1, lastSeq: 3, headHash: own[2]!.hash, ok: true },
      { origin: "kz.ala", epoch: 1, entries: 4, firstSeq: 1, lastSeq: 5, headHash: entries[4]!.hash, ok: true },
    ]);
  });

  it("AuditLog.resolve - the anchor is taken only once: later entries are chained normally", async () => {
    const entries = await childEntries("kz.ala", 6);
    await parent.ingest(entries.slice(0, 2), ACTOR);
    await parent.ingest([entries[3]!], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    const result = await parent.ingest([entries[3]!, entries[5]!], ACTOR);
    const q = quarantine("kz.ala", 1, 6, "gap: expected entry 5, got 6");
    expect(result).toEqual({ stored: 1, heads: [head(entries[3]!)], quarantined: [q], newlyQuarantined: [q] });
  });

  it("AuditLog.resolve - after a fork, accepts the diverging entry when it comes again and chains on from it", async () => {
    const storeA = await openStore("kz.ala-a");
    const storeB = await openStore("kz.ala-b");
    const [a1] = await childEntries("kz.ala", 1, 1, storeA);
    await childEntries("kz.ala", 1, 1, storeB);
    const [a2] = await new AuditLog(storeA, "kz.ala", 1).appendMany(events("test.a2"), CHILD_TIME);
    const [b2, b3, b4] = await new AuditLog(storeB, "kz.ala", 1).appendMany(events("test.b2", "test.b3", "test.b4"), CHILD_TIME);
    await parent.ingest([a1!, a2!], ACTOR);
    await parent.ingest([b3!], ACTOR);
    expect(await parent.resolve("kz.ala", "user:admin")).toBe(true);
    expect(await parent.ingest([b3!, b4!], ACTOR)).toEqual({ stored: 2, heads: [head(b4!)], quarantined: [], newlyQuarantined: [] });
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 3, prev_hash: b2!.hash, why: "resolved" },
    ]);
    expect(await parent.list({ site: "kz.ala" })).toEqual([a1, a2, b3, b4]);
    expect(await parent.verify("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 1, entries: 4, firstSeq: 1, lastSeq: 4, headHash: b4!.hash, ok: true },
    ]);
  });

  it("AuditLog.resolve - while the re-anchor is pending, other entries are judged as usual", async () => {
    const entries = await childEntries("kz.ala", 6);
    await parent.ingest(entries.slice(0, 3), ACTOR);
    await parent.ingest([entries[4]!], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    // The child resends from the held head: 4 chains normally, 5 is the accepted break.
    const result = await parent.ingest(entries.slice(3), ACTOR);
    expect(result).toEqual({ stored: 3, heads: [head(entries[5]!)], quarantined: [], newlyQuarantined: [] });
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 5, prev_hash: entries[3]!.hash, why: "resolved" },
    ]);
    expect((await parent.verify("kz.ala"))[0]).toMatchObject({ entries: 6, firstSeq: 1, lastSeq: 6, ok: true });
  });

  it("AuditLog.resolve - a different gap after the pending re-anchor quarantines again", async () => {
    const entries = await childEntries("kz.ala", 7);
    await parent.ingest(entries.slice(0, 3), ACTOR);
    await parent.ingest([entries[4]!], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    const result = await parent.ingest([entries[3]!, entries[6]!], ACTOR);
    const q = quarantine("kz.ala", 1, 7, "gap: expected entry 5, got 7");
    expect(result).toEqual({ stored: 1, heads: [head(entries[3]!)], quarantined: [q], newlyQuarantined: [q] });
  });

  // An entry that differs from one already held must not overwrite it on resolve.
  it("AuditLog.resolve - re-anchoring below the held head neither rewrites held entries nor breaks verify", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest(entries, ACTOR);
    const forged2 = forge(entries[1]!, { target: "kz.ast" });
    await parent.ingest([forged2], ACTOR);
    expect(await parent.resolve("kz.ala", "user:admin")).toBe(true);
    await parent.ingest([forged2], ACTOR);
    // Today: stored=1, the held entry 2 is replaced, the head moves back to 2, and verify
    // says { ok: false, badSeq: 3, reason: "its previous hash does not match the entry before it: …" }.
    expect((await parent.list({ site: "kz.ala" })).slice(0, 3)).toEqual(entries);
    expect((await parent.verify("kz.ala")).every((r) => r.ok)).toBe(true);
  });

  it("AuditLog.resolve - an origin quarantined on its first entry restarts from that entry", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest([entries[1]!], ACTOR);
    expect(await parent.resolve("kz.ala", "user:admin")).toBe(true);
    expect(await parent.ingest([entries[1]!, entries[2]!], ACTOR)).toEqual({
      stored: 2, heads: [head(entries[2]!)], quarantined: [], newlyQuarantined: [],
    });
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 2, prev_hash: entries[0]!.hash, why: "resolved" },
    ]);
    expect((await parent.verify("kz.ala"))[0]).toMatchObject({ entries: 2, firstSeq: 2, lastSeq: 3, ok: true });
  });

  it("AuditLog.resolve - still refuses an edited entry after the head", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest([entries[0]!, entries[2]!], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    const edited = { ...entries[2]!, actor: "user:mallory" };
    const q = quarantine("kz.ala", 1, 3, "entry 3 was changed: its hash does not match its content");
    expect((await parent.ingest([edited], ACTOR)).newlyQuarantined).toEqual([q]);
  });

  it("AuditLog.resolve - accepts the edited entry that quarantined the origin, unchanged, as the chain base; verify is ok", async () => {
    const entries = await childEntries("kz.ala", 5);
    const edited = { ...entries[1]!, actor: "user:mallory" };
    const reason = "entry 2 was changed: its hash does not match its content";
    const q = quarantine("kz.ala", 1, 2, reason, entries[1]!.hash);
    expect(await parent.ingest([entries[0]!, edited, entries[2]!], ACTOR)).toEqual({ stored: 1, heads: [head(entries[0]!)], quarantined: [q], newlyQuarantined: [q] });
    expect(await parent.quarantines()).toEqual([q]);
    expect(await parent.resolve("kz.ala", "user:admin")).toBe(true);

    // The child resends from the held head: the same edited entry, then entries chained from its claimed hash.
    const result = await parent.ingest([edited, entries[2]!, entries[3]!], ACTOR);
    expect(result).toEqual({ stored: 3, heads: [head(entries[3]!)], quarantined: [], newlyQuarantined: [] });
    expect(await parent.list({ site: "kz.ala" })).toEqual([entries[0], edited, entries[2], entries[3]]);
    const content = hashEntry(edited);
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([
      { origin: "kz.ala", epoch: 1, seq: 2, prev_hash: entries[0]!.hash, why: "resolved", hash: entries[1]!.hash, contentHash: content },
    ]);
    const own = await parent.list({ site: "kz", action: "audit" });
    expect(own.map((e) => [e.seq, e.action, e.details])).toEqual([
      [1, "audit.quarantine", canonicalJson({ epoch: 1, seq: 2, reason })],
      [2, "audit.resolve", canonicalJson({ ...q, anchor_seq: 2, content_hash: content })],
      [3, "audit.reanchor", canonicalJson({ epoch: 1, seq: 2, prev_hash: entries[0]!.hash, hash: entries[1]!.hash, content_hash: content })],
    ]);
    expect(await parent.verify()).toEqual([
      { origin: "kz", epoch: 1, entries: 3, firstSeq: 1, lastSeq: 3, headHash: own[2]!.hash, ok: true },
      { origin: "kz.ala", epoch: 1, entries: 4, firstSeq: 1, lastSeq: 4, headHash: entries[3]!.hash, ok: true },
    ]);

    // The accepted edit excuses nothing else: a different edit at a later seq quarantines again.
    const later = { ...entries[4]!, target: "kz.ast" };
    const q5 = quarantine("kz.ala", 1, 5, "entry 5 was changed: its hash does not match its content", entries[4]!.hash);
    expect(await parent.ingest([later], ACTOR)).toEqual({ stored: 0, heads: [], quarantined: [q5], newlyQuarantined: [q5] });
  });

  it("AuditLog.resolve - after an edit is resolved, a different edit of that entry (same claimed hash) is refused", async () => {
    const entries = await childEntries("kz.ala", 2);
    await parent.ingest([entries[0]!, { ...entries[1]!, actor: "user:mallory" }], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    const other = { ...entries[1]!, actor: "user:eve" };
    const q = quarantine("kz.ala", 1, 2, "entry 2 was changed: its hash does not match its content", entries[1]!.hash);
    expect(await parent.ingest([other], ACTOR)).toEqual({ stored: 0, heads: [], quarantined: [q], newlyQuarantined: [q] });
    expect(await parentStore.section<ChainBase>("audit-base").values().all()).toEqual([]);
  });

  it("AuditLog.verify - excuses an edited entry only for a resolved base of that very edit that its own log records", async () => {
    await parent.append({ actor: "node", action: "node.start", target: "kz", result: "ok" });
    const entries = await childEntries("kz.ala", 5);
    await parent.ingest(entries.slice(0, 3), ACTOR);
    await parent.ingest([entries[4]!], ACTOR);
    await parent.resolve("kz.ala", "user:admin");
    await parent.ingest([entries[4]!], ACTOR);
    expect((await parent.verify("kz.ala")).map((r) => r.ok)).toEqual([true]);
    const held = parentStore.section<AuditEntry>("audit-entry");
    const bases = parentStore.section<ChainBase>("audit-base");
    const key = (seq: number) => `kz.ala|0000000001|${String(seq).padStart(16, "0")}`;
    const changed = "the entry was changed: its hash does not match its content";
    // Behind the log's back: entry 2 edited, with a forged base that names the edit.
    const edited2 = { ...entries[1]!, actor: "user:mallory" };
    await held.put(key(2), edited2);
    await bases.put(key(2), { origin: "kz.ala", epoch: 1, seq: 2, prev_hash: entries[0]!.hash, why: "resolved", hash: entries[1]!.hash, contentHash: hashEntry(edited2) });
    // Entry 5 edited and its recorded resolved base (of a gap, not an edit) extended to name the edit.
    const edited5 = { ...entries[4]!, actor: "user:mallory" };
    await held.put(key(5), edited5);
    await bases.put(key(5), { origin: "kz.ala", epoch: 1, seq: 5, prev_hash: entries[3]!.hash, why: "resolved", hash: entries[4]!.hash, contentHash: hashEntry(edited5) });
    expect(await parent.verify("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 1, entries: 4, firstSeq: 1, lastSeq: 5, headHash: entries[4]!.hash, ok: false, badSeq: 2, reason: changed },
    ]);
    await held.put(key(2), entries[1]!);
    await bases.del(key(2));
    expect(await parent.verify("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 1, entries: 4, firstSeq: 1, lastSeq: 5, headHash: entries[4]!.hash, ok: false, badSeq: 5, reason: changed },
    ]);
  });

  it("AuditLog.verify - reports the quarantine reason of a quarantined origin", async () => {
    const entries = await childEntries("kz.ala", 3);
    await parent.ingest([entries[0]!, entries[2]!], ACTOR);
    const report = (await parent.verify("kz.ala"))[0];
    expect(report).toEqual({
      origin: "kz.ala", epoch: 1, entries: 1, firstSeq: 1, lastSeq: 1, headHash: entries[0]!.hash, ok: true,
      quarantined: "gap: expected entry 2, got 3",
    });
  });
});

describe("AuditLog.verify beside ingest", () => {
  // Heads read before a batch lands and entries read after it used to disagree: the
  // parent's verify reported "entries after the head record were added outside the log".
  it("AuditLog.verify - a verify running while batches land sees heads and entries that agree", async () => {
    const entries = await childEntries("kz.ala", 400);
    await parent.ingest(entries.slice(0, 100), ACTOR);
    const verifies: Promise<unknown>[] = [];
    for (let from = 100; from < 400; from += 100) {
      verifies.push(parent.verify("kz.ala"));
      await Promise.all([parent.ingest(entries.slice(from, from + 100), ACTOR), verifies.at(-1)]);
    }
    // Each verify sees the chain exactly as it stood between two batches.
    expect(await Promise.all(verifies)).toEqual([100, 200, 300].map((n) => [
      { origin: "kz.ala", epoch: 1, entries: n, firstSeq: 1, lastSeq: n, headHash: entries[n - 1]!.hash, ok: true },
    ]));
  });
});
