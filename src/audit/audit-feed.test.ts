import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import { NodeStore } from "../store/node-store.ts";
import { AuditFeed, MAX_AUDIT_BATCH_BYTES } from "./audit-feed.ts";
import { type AuditEvent, AuditLog } from "./audit-log.ts";

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

let dir: string;
let store: NodeStore;
let log: AuditLog;
let own: AuditEntry[];
let child: AuditEntry[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-audit-feed-"));
  store = await NodeStore.open(path.join(dir, "store"));
  log = new AuditLog(store, "kz.ala", 1);
  own = await log.appendMany(events(4), NOW);
  // Entries relayed from a child sit in the same sections under their own origin.
  child = await new AuditLog(store, "kz.ala.metro-01", 1).appendMany(events(2), NOW);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function events(n: number): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => ({ actor: "node", action: "link.connect", target: `t${i + 1}`, result: "ok" }));
}

const head = (e: AuditEntry) => ({ origin: e.origin, epoch: e.epoch, seq: e.seq, hash: e.hash });

describe("AuditFeed", () => {
  it("AuditFeed.next - sends every origin's entries after the parent's heads, then nothing", async () => {
    const feed = new AuditFeed(log, [head(own[1]!)]);
    expect(feed.name).toBe("audit");
    expect(feed.source).toBe(log);
    expect(await feed.next(100)).toEqual({ request: { entries: [own[2], own[3], child[0], child[1]], pending: 0 }, count: 4 });
    expect(await feed.next(100)).toBeUndefined();
  });

  it("AuditFeed.next - respects limit across origins and advances its cursors", async () => {
    const feed = new AuditFeed(log, []);
    expect((await feed.next(3))?.request.entries).toEqual([own[0], own[1], own[2]]);
    expect((await feed.next(3))?.request.entries).toEqual([own[3], child[0], child[1]]);
    expect(await feed.next(3)).toBeUndefined();
  });

  it("AuditFeed.next - keeps a batch of large entries under the byte budget, and sends the rest next", async () => {
    const feed = new AuditFeed(log, [head(own[3]!), head(child[1]!)]);
    // 100 entries of about 16 KiB each: more than one batch may carry.
    const large = await log.appendMany(
      Array.from({ length: 100 }, (_, i) => ({ actor: "node", action: "vms.export", target: `t${i}`, result: "ok", details: { note: "x".repeat(16_000) } })),
      NOW,
    );
    const first = (await feed.next(500))!.request.entries;
    const second = (await feed.next(500))!.request.entries;
    // Each counts about 16.2 KiB with its framing: 64 fit in 1 MiB.
    expect(first.length).toBe(64);
    expect(JSON.stringify(first).length).toBeLessThan(MAX_AUDIT_BATCH_BYTES);
    expect([...first, ...second]).toEqual(large);
    expect(await feed.next(500)).toBeUndefined();
  });

  it("AuditFeed.next - picks up entries written later", async () => {
    const feed = new AuditFeed(log, [head(own[3]!), head(child[1]!)]);
    expect(await feed.next(10)).toBeUndefined();
    const [later] = await log.appendMany(events(1), NOW);
    expect(await feed.next(10)).toEqual({ request: { entries: [later], pending: 0 }, count: 1 });
  });

  // Entry 3's value copied under seq 999999: the cursor used to come from the value (seq 3),
  // so every batch started again at 4.
  it("AuditFeed.next - a value stored under a key it does not match: the cursor follows the key and never goes back", async () => {
    const key = `kz.ala|${"1".padStart(10, "0")}|${"999999".padStart(16, "0")}`;
    await store.section<AuditEntry>("audit-entry").put(key, own[2]!);
    const feed = new AuditFeed(log, [head(own[3]!), head(child[1]!)]);
    expect(await feed.next(100)).toEqual({ request: { entries: [own[2]], pending: 0 }, count: 1 });
    expect(await feed.next(100)).toBeUndefined();
    const [later] = await log.appendMany(events(1), NOW);
    expect(later!.seq).toBe(1_000_000);
    expect(await feed.next(100)).toEqual({ request: { entries: [later], pending: 0 }, count: 1 });
    expect(await feed.next(100)).toBeUndefined();
  });

  it("AuditFeed.next - an unreadable entry stops its origin there, with one warning; other origins flow; it resumes once repaired", async () => {
    const key = `kz.ala|${"1".padStart(10, "0")}|${"3".padStart(16, "0")}`;
    await store.textSection("audit-entry").put(key, "x");
    const warn = vi.fn();
    const feed = new AuditFeed(log, [], { warn });
    expect(await feed.next(100)).toEqual({ request: { entries: [own[0], own[1], child[0], child[1]], pending: 0 }, count: 4 });
    expect(await feed.next(100)).toBeUndefined();
    expect(await feed.next(100)).toBeUndefined();
    expect(warn.mock.calls).toEqual([[
      "audit entry cannot be read; its origin is not shipped past it until it is repaired",
      { origin: "kz.ala", epoch: 1, seq: 3, reason: "not valid JSON" },
    ]]);
    await store.section<AuditEntry>("audit-entry").put(key, own[2]!);
    expect(await feed.next(100)).toEqual({ request: { entries: [own[2], own[3]], pending: 0 }, count: 2 });
  });

  it("AuditFeed.acknowledged - counts sent entries, saves the parent's heads as anchors and its quarantines", async () => {
    const feed = new AuditFeed(log, []);
    await feed.acknowledged({ batch_id: 1, heads: [head(own[3]!)], quarantined_origins: ["kz.ala.metro-01"] }, 4);
    await feed.acknowledged({ batch_id: 2, heads: [head(child[1]!)], quarantined_origins: [] }, 2);
    expect(feed.sent).toBe(6);
    expect(feed.quarantinedByParent).toEqual([]);
    expect(await log.anchors()).toEqual(new Map([["kz.ala", head(own[3]!)], ["kz.ala.metro-01", head(child[1]!)]]));
  });
});
