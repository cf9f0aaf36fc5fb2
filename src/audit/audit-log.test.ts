import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditEntry, AuditHead } from "../gen/vmtree/v1/audit.ts";
import { NodeStore } from "../store/node-store.ts";
import { canonicalJson, GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import { type AuditEvent, AuditLog } from "./audit-log.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const MINUTE_MS = 60_000;

let dir: string;
let store: NodeStore;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-audit-log-"));
  store = await NodeStore.open(path.join(dir, "store"));
});

afterEach(async () => {
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function event(action: string, target = "kz", details?: Record<string, unknown>): AuditEvent {
  return { actor: "user:admin", action, target, result: "ok", ...(details ? { details } : {}) };
}

/** The entry `append` must produce, built field by field. */
function expectedEntry(fields: Omit<AuditEntry, "hash">): AuditEntry {
  return { ...fields, hash: hashEntry(fields) };
}

describe("AuditLog.append", () => {
  it("AuditLog.append - appends made at once are grouped into few writes, in call order, one chain", async () => {
    const log = new AuditLog(store, "kz", 1);
    const batch = vi.spyOn(store.db, "batch");
    const entries = await Promise.all(Array.from({ length: 1_500 }, (_, i) => log.append(event("vms.view_live", `cam-${i}`))));
    expect(entries.map((e) => [e.seq, e.target])).toEqual(Array.from({ length: 1_500 }, (_, i) => [i + 1, `cam-${i}`]));
    // Groups of at most 1,000 entries, each with the head's move.
    expect(batch.mock.calls.map((call) => ((call as unknown[])[0] as unknown[]).length)).toEqual([1_001, 501]);
    expect((await log.verify()).map((r) => [r.origin, r.entries, r.ok])).toEqual([["kz", 1_500, true]]);
  });

  it("AuditLog.append - numbers entries 1..n and chains each to the previous hash from GENESIS_HASH", async () => {
    const log = new AuditLog(store, "kz", 1);
    const first = await log.append(event("inventory.import", "cameras.csv", { file: "cameras.csv", cameras: 3 }));
    vi.setSystemTime(NOW + MINUTE_MS);
    const second = await log.append({ actor: "site:kz.ala", action: "link.connect", target: "kz.ala", result: "refused" });
    const third = await log.append(event("node.start", "kz", { pid: 42 }));

    const one = expectedEntry({
      origin: "kz", epoch: 1, seq: 1, time_ms: NOW, actor: "user:admin", action: "inventory.import", target: "cameras.csv",
      result: "ok", details: '{"cameras":3,"file":"cameras.csv"}', prev_hash: GENESIS_HASH,
    });
    const two = expectedEntry({
      origin: "kz", epoch: 1, seq: 2, time_ms: NOW + MINUTE_MS, actor: "site:kz.ala", action: "link.connect", target: "kz.ala",
      result: "refused", details: "{}", prev_hash: one.hash,
    });
    const three = expectedEntry({
      origin: "kz", epoch: 1, seq: 3, time_ms: NOW + MINUTE_MS, actor: "user:admin", action: "node.start", target: "kz",
      result: "ok", details: '{"pid":42}', prev_hash: two.hash,
    });
    expect([first, second, third]).toEqual([one, two, three]);
    expect(await log.list()).toEqual([one, two, three]);
    expect(await log.heads()).toEqual([{ origin: "kz", epoch: 1, seq: 3, hash: three.hash }]);
  });

  it("AuditLog.append - emits change once per write", async () => {
    const log = new AuditLog(store, "kz", 1);
    const change = vi.fn();
    log.on("change", change);
    await log.append(event("a.one"));
    expect(change).toHaveBeenCalledTimes(1);
    await log.append(event("a.two"));
    expect(change).toHaveBeenCalledTimes(2);
  });

  it("AuditLog.append - serializes concurrent appends into one gapless chain", async () => {
    const log = new AuditLog(store, "kz", 1);
    const entries = await Promise.all([1, 2, 3, 4, 5].map((n) => log.append(event(`a.n${n}`))));
    expect(entries.map((e) => [e.seq, e.action])).toEqual([[1, "a.n1"], [2, "a.n2"], [3, "a.n3"], [4, "a.n4"], [5, "a.n5"]]);
    for (let i = 1; i < entries.length; i++) expect(entries[i]!.prev_hash).toBe(entries[i - 1]!.hash);
  });

  it("AuditLog.append - continues the chain held in the store after a restart", async () => {
    const before = await new AuditLog(store, "kz", 1).append(event("a.one"));
    const after = await new AuditLog(store, "kz", 1).append(event("a.two"));
    expect(after.seq).toBe(2);
    expect(after.prev_hash).toBe(before.hash);
  });

  it("AuditLog.append - starts a new epoch at 1 from GENESIS_HASH and moves the head", async () => {
    await new AuditLog(store, "kz", 1).appendMany([event("a.one"), event("a.two")]);
    const log2 = new AuditLog(store, "kz", 2);
    const first = await log2.append(event("a.three"));
    expect(first).toMatchObject({ epoch: 2, seq: 1, prev_hash: GENESIS_HASH });
    expect(await log2.heads()).toEqual([{ origin: "kz", epoch: 2, seq: 1, hash: first.hash }]);
    expect((await log2.list()).map((e) => [e.epoch, e.seq])).toEqual([[1, 1], [1, 2], [2, 1]]);
  });

  // A config restored from a backup may name an older epoch; the log stays append-only.
  it("AuditLog.append - never overwrites entries of an epoch older than the stored head", async () => {
    const one = await new AuditLog(store, "kz", 1).appendMany([event("a.one"), event("a.two")]);
    await new AuditLog(store, "kz", 2).append(event("a.three"));
    await new AuditLog(store, "kz", 1).append(event("a.stale")).catch(() => undefined);
    expect((await new AuditLog(store, "kz", 2).list()).filter((e) => e.epoch === 1)).toEqual(one);
  });
});

describe("AuditLog.appendMany", () => {
  it("AuditLog.appendMany - writes the events in order in one batch at the given time", async () => {
    const log = new AuditLog(store, "kz", 1);
    const change = vi.fn();
    log.on("change", change);
    const at = NOW - 5 * MINUTE_MS;
    const entries = await log.appendMany([event("a.one"), event("a.two"), event("a.three")], at);
    expect(entries.map((e) => [e.seq, e.action, e.time_ms])).toEqual([[1, "a.one", at], [2, "a.two", at], [3, "a.three", at]]);
    expect(entries[0]!.prev_hash).toBe(GENESIS_HASH);
    expect(entries[1]!.prev_hash).toBe(entries[0]!.hash);
    expect(entries[2]!.prev_hash).toBe(entries[1]!.hash);
    for (const entry of entries) expect(entry.hash).toBe(hashEntry(entry));
    expect(change).toHaveBeenCalledTimes(1);
    expect(await log.heads()).toEqual([{ origin: "kz", epoch: 1, seq: 3, hash: entries[2]!.hash }]);
    expect(await store.section<AuditHead>("audit-head").get("kz")).toEqual({ origin: "kz", epoch: 1, seq: 3, hash: entries[2]!.hash });
  });

  it("AuditLog.appendMany - stores details as canonical JSON", async () => {
    const log = new AuditLog(store, "kz", 1);
    const [entry] = await log.appendMany([event("a.one", "kz", { z: 1, a: { y: 2, b: 3 } })]);
    expect(entry!.details).toBe(canonicalJson({ a: { b: 3, y: 2 }, z: 1 }));
    expect(entry!.details).toBe('{"a":{"b":3,"y":2},"z":1}');
  });
});

describe("AuditLog.list", () => {
  /** Five origins on one store, entries at NOW + i minutes. */
  async function populate() {
    const at = (minutes: number) => NOW + minutes * MINUTE_MS;
    await new AuditLog(store, "kz", 1).appendMany([event("inventory.import", "kz")], at(0));
    await new AuditLog(store, "kz.ala", 1).appendMany([{ ...event("link.connect", "kz"), actor: "node" }], at(1));
    await new AuditLog(store, "kz.ala.metro-01", 1).appendMany([event("inventory", "m")], at(2));
    await new AuditLog(store, "kz.ast", 1).appendMany([event("inventoryx.import", "x")], at(3));
    await new AuditLog(store, "kzx", 1).appendMany([event("inventory.export", "y")], at(4));
    await new AuditLog(store, "kz", 1).appendMany([{ ...event("audit.prune", "kz"), actor: "node" }], at(5));
  }
  const ids = (entries: AuditEntry[]) => entries.map((e) => `${e.origin}#${e.seq}`);

  it("AuditLog.list - returns everything in key order (origin, epoch, seq) without a query", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    // "." < "|" < "}" and "x" < "|": subtrees sort before their root, "kzx" before "kz".
    expect(ids(await log.list())).toEqual(["kz.ala.metro-01#1", "kz.ala#1", "kz.ast#1", "kzx#1", "kz#1", "kz#2"]);
  });

  it("AuditLog.list - filters by site subtree, not by string prefix", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    expect(ids(await log.list({ site: "kz" }))).toEqual(["kz.ala.metro-01#1", "kz.ala#1", "kz.ast#1", "kz#1", "kz#2"]);
    expect(ids(await log.list({ site: "kz.ala" }))).toEqual(["kz.ala.metro-01#1", "kz.ala#1"]);
    expect(ids(await log.list({ site: "kz.al" }))).toEqual([]);
  });

  it("AuditLog.list - sinceMs and untilMs are inclusive bounds on time_ms", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    expect(ids(await log.list({ sinceMs: NOW + 2 * MINUTE_MS }))).toEqual(["kz.ala.metro-01#1", "kz.ast#1", "kzx#1", "kz#2"]);
    expect(ids(await log.list({ untilMs: NOW + 1 * MINUTE_MS }))).toEqual(["kz.ala#1", "kz#1"]);
    expect(ids(await log.list({ sinceMs: NOW + MINUTE_MS, untilMs: NOW + 3 * MINUTE_MS }))).toEqual(["kz.ala.metro-01#1", "kz.ala#1", "kz.ast#1"]);
  });

  it("AuditLog.list - filters by exact actor", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    expect(ids(await log.list({ actor: "node" }))).toEqual(["kz.ala#1", "kz#2"]);
    expect(ids(await log.list({ actor: "user" }))).toEqual([]);
  });

  it("AuditLog.list - filters by action or dotted action prefix", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    expect(ids(await log.list({ action: "inventory" }))).toEqual(["kz.ala.metro-01#1", "kzx#1", "kz#1"]);
    expect(ids(await log.list({ action: "inventory.import" }))).toEqual(["kz#1"]);
    expect(ids(await log.list({ action: "inv" }))).toEqual([]);
  });

  it("AuditLog.list - stops at limit and combines filters", async () => {
    await populate();
    const log = new AuditLog(store, "kz", 1);
    expect(ids(await log.list({ limit: 2 }))).toEqual(["kz.ala.metro-01#1", "kz.ala#1"]);
    expect(ids(await log.list({ site: "kz", action: "inventory", limit: 1 }))).toEqual(["kz.ala.metro-01#1"]);
    expect(ids(await log.list({ site: "kz", actor: "user:admin", sinceMs: NOW + 3 * MINUTE_MS }))).toEqual(["kz.ast#1"]);
  });
});

describe("AuditLog.append - where the chain ends", () => {
  const key = (seq: number) => `kz|${String(1).padStart(10, "0")}|${String(seq).padStart(16, "0")}`;

  // The head record is not hashed: lowering it must not make the node overwrite its own entries.
  it("AuditLog.append - a lowered head record: appends after the last stored entry, overwrites nothing, verify reports it", async () => {
    const log = new AuditLog(store, "kz", 1);
    const entries = await log.appendMany(Array.from({ length: 7 }, (_, i) => event(`a.e${i + 1}`)));
    await store.section<AuditHead>("audit-head").put("kz", { origin: "kz", epoch: 1, seq: 5, hash: entries[4]!.hash });

    const next = await log.append(event("a.next"));

    expect(next).toEqual(expectedEntry({
      origin: "kz", epoch: 1, seq: 8, time_ms: NOW, actor: "user:admin", action: "a.next", target: "kz", result: "ok",
      details: "{}", prev_hash: entries[6]!.hash,
    }));
    expect(await log.list()).toEqual([...entries, next]);
    expect(await store.section<AuditEntry>("audit-entry").get(key(6))).toEqual(entries[5]);
    // The head record stays where it was put: the mismatch remains for verify to report.
    expect(await log.heads()).toEqual([{ origin: "kz", epoch: 1, seq: 5, hash: entries[4]!.hash }]);
    expect(await log.verify()).toEqual([{
      origin: "kz", epoch: 1, entries: 8, firstSeq: 1, lastSeq: 8, headHash: next.hash, ok: false, badSeq: 6,
      reason: "entries after the head record (5) were added outside the log",
    }]);
  });

  it("AuditLog.append - a deleted head record: appends after the last stored entry, not at 1", async () => {
    const log = new AuditLog(store, "kz", 1);
    const entries = await log.appendMany([event("a.one"), event("a.two")]);
    await store.section<AuditHead>("audit-head").del("kz");
    const next = await log.append(event("a.three"));
    expect([next.seq, next.prev_hash]).toEqual([3, entries[1]!.hash]);
    expect(await log.list()).toEqual([...entries, next]);
    expect(await log.heads()).toEqual([{ origin: "kz", epoch: 1, seq: 3, hash: next.hash }]);
  });

  it("AuditLog.append - a deleted tail under a head record: the gap stays, nothing is refilled", async () => {
    const log = new AuditLog(store, "kz", 1);
    const entries = await log.appendMany([event("a.one"), event("a.two"), event("a.three")]);
    await store.section<AuditEntry>("audit-entry").del(key(3));
    const next = await log.append(event("a.four"));
    expect([next.seq, next.prev_hash]).toEqual([4, entries[2]!.hash]);
    expect((await log.verify())[0]).toMatchObject({ ok: false, badSeq: 4, reason: "entry 3 is missing" });
  });
});

describe("AuditLog.entriesAfter", () => {
  async function twoEpochs() {
    const one = await new AuditLog(store, "kz", 1).appendMany([event("a.e1s1"), event("a.e1s2"), event("a.e1s3")]);
    const two = await new AuditLog(store, "kz", 2).appendMany([event("a.e2s1"), event("a.e2s2")]);
    // Neighbours whose keys sort right before and after "kz|": never part of kz's range.
    await new AuditLog(store, "kz.ala", 1).appendMany([event("a.child")]);
    await new AuditLog(store, "kzx", 1).appendMany([event("a.other")]);
    return [...one, ...two];
  }
  const actions = (entries: AuditEntry[]) => entries.map((e) => e.action);

  it("AuditLog.entriesAfter - continues across epochs, in order, only for the origin", async () => {
    const all = await twoEpochs();
    const log = new AuditLog(store, "kz", 2);
    expect(await log.entriesAfter("kz", 0, 0, 100)).toEqual(all);
    expect(actions(await log.entriesAfter("kz", 1, 2, 100))).toEqual(["a.e1s3", "a.e2s1", "a.e2s2"]);
    expect(actions(await log.entriesAfter("kz", 1, 3, 100))).toEqual(["a.e2s1", "a.e2s2"]);
    expect(actions(await log.entriesAfter("kz", 2, 1, 100))).toEqual(["a.e2s2"]);
    expect(await log.entriesAfter("kz", 2, 2, 100)).toEqual([]);
    expect(actions(await log.entriesAfter("kz.ala", 0, 0, 100))).toEqual(["a.child"]);
  });

  it("AuditLog.entriesAfter - returns at most limit entries", async () => {
    await twoEpochs();
    const log = new AuditLog(store, "kz", 2);
    expect(actions(await log.entriesAfter("kz", 1, 1, 2))).toEqual(["a.e1s2", "a.e1s3"]);
    expect(actions(await log.entriesAfter("kz", 1, 3, 1))).toEqual(["a.e2s1"]);
  });

  it("AuditLog.countAfter - counts entries of the origin after (epoch, seq) across epochs", async () => {
    await twoEpochs();
    const log = new AuditLog(store, "kz", 2);
    expect(await log.countAfter("kz", 0, 0)).toBe(5);
    expect(await log.countAfter("kz", 1, 1)).toBe(4);
    expect(await log.countAfter("kz", 1, 3)).toBe(2);
    expect(await log.countAfter("kz", 2, 2)).toBe(0);
    expect(await log.countAfter("kz.ala", 0, 0)).toBe(1);
    expect(await log.countAfter("kz.ast", 0, 0)).toBe(0);
  });
});

describe("AuditLog.heads", () => {
  it("AuditLog.headsIn - returns the heads of the subtree only", async () => {
    const kz = await new AuditLog(store, "kz", 1).append(event("a.one"));
    const ala = await new AuditLog(store, "kz.ala", 3).append(event("a.one"));
    const metro = await new AuditLog(store, "kz.ala.metro-01", 1).append(event("a.one"));
    await new AuditLog(store, "kz.alamaty", 1).append(event("a.one"));
    const log = new AuditLog(store, "kz", 1);
    expect(await log.headsIn("kz.ala")).toEqual([
      { origin: "kz.ala", epoch: 3, seq: 1, hash: ala.hash },
      { origin: "kz.ala.metro-01", epoch: 1, seq: 1, hash: metro.hash },
    ]);
    expect((await log.headsIn("kz")).map((h) => h.origin)).toEqual(["kz", "kz.ala", "kz.ala.metro-01", "kz.alamaty"]);
    expect((await log.headsIn("kz")).find((h) => h.origin === "kz")).toEqual({ origin: "kz", epoch: 1, seq: 1, hash: kz.hash });
  });

  it("AuditLog.saveAnchors - stores acknowledged heads by origin, the last one wins", async () => {
    const log = new AuditLog(store, "kz", 1);
    await log.saveAnchors([]);
    expect(await log.anchors()).toEqual(new Map());
    const a: AuditHead = { origin: "kz", epoch: 1, seq: 2, hash: "a".repeat(64) };
    const b: AuditHead = { origin: "kz.ala", epoch: 1, seq: 7, hash: "b".repeat(64) };
    await log.saveAnchors([a, b]);
    await log.saveAnchors([{ ...a, seq: 3, hash: "c".repeat(64) }]);
    expect(await log.anchors()).toEqual(new Map([["kz", { ...a, seq: 3, hash: "c".repeat(64) }], ["kz.ala", b]]));
  });
});
