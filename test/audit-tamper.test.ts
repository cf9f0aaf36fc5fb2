import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin } from "../src/node/admin-client.ts";
import { AuditTamper } from "./support/audit-tamper.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, ok, TestNode, waitFor } from "./support/tree.ts";

const CHANGED = "the entry was changed: its hash does not match its content";

interface Case {
  name: string;
  /** Tampers the stopped site's store; `s` is an entry the parent has not received yet, `last` the last entry. */
  tamper(t: AuditTamper, s: number, last: number): Promise<void>;
  /** What the site's own `audit verify` reports, given s and the site's anchored head. */
  local(s: number, anchor: number): { badSeq: number; reason: string };
  /** Why the parent quarantines the origin, given s and the head the parent held. */
  parent(s: number, held: number): { seq: number; reason: string };
}

const CASES: Case[] = [
  {
    name: "an edited entry",
    tamper: (t, s) => t.edit(s, { actor: "user:nobody" }),
    local: (s) => ({ badSeq: s, reason: CHANGED }),
    parent: (s) => ({ seq: s, reason: `entry ${s} was changed: its hash does not match its content` }),
  },
  {
    name: "a deleted entry",
    tamper: (t, s) => t.delete(s),
    local: (s) => ({ badSeq: s + 1, reason: `entry ${s} is missing` }),
    parent: (s) => ({ seq: s + 1, reason: `gap: expected entry ${s}, got ${s + 1}` }),
  },
  {
    name: "an inserted entry",
    tamper: (t, s, last) => t.insertAfter(s, last, { actor: "user:intruder", action: "vms.view_archive", target: "metro-01-cam-001" }),
    local: (s) => ({ badSeq: s + 1, reason: `entry ${s + 1} appears twice: an entry was inserted` }),
    // The forged entry itself chains correctly; the displaced original then forks from it.
    parent: (s) => ({ seq: s + 1, reason: `fork: entry ${s + 1} differs from the one already held` }),
  },
  {
    name: "two swapped entries",
    tamper: (t, s) => t.swap(s, s + 1),
    local: (s) => ({ badSeq: s + 1, reason: `entry ${s} is missing` }),
    parent: (s) => ({ seq: s + 1, reason: `gap: expected entry ${s}, got ${s + 1}` }),
  },
  {
    name: "the whole history rewritten with recomputed hashes",
    tamper: (t, _s, last) => t.rewrite(last, (e) => (e.seq === 2 ? { ...e, actor: "user:nobody" } : e)),
    local: (_s, anchor) => ({ badSeq: anchor, reason: "it differs from the head the parent acknowledged: the history was rewritten" }),
    parent: (_s, held) => ({ seq: held + 1, reason: `fork: entry ${held + 1} does not follow the held head ${held} (previous hash differs)` }),
  },
];

/** Records `count` actions of the site's video system through the admin API (socket or store). */
async function record(site: TestNode, count: number, what: string): Promise<void> {
  const admin = await connectAdmin(site.dir, "user:test");
  try {
    for (let i = 0; i < count; i++) {
      await admin.recordAudit({ actor: "user:operator", action: "vms.view_live", target: `${what}-${i}`, result: "ok", details: "" });
    }
  } finally {
    await admin.close();
  }
}

// no way to alter the log at the database level without detection.
describe("audit - tampering with a stopped child's store", () => {
  let kz: TestNode;

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it.each(CASES.map((c, i) => ({ ...c, id: `kz.t${i}` })))(
    "audit - $name is detected by the child's verify and by the parent",
    async ({ id, tamper, local, parent }) => {
      const site = await joinChild(kz, id);
      await site.serve();
      await record(site, 3, "shipped");
      await waitFor(() => site.status(), (s) => s.parent?.state === "connected" && s.parent.auditPending === 0, 20_000, "shipped");
      await site.stop();
      const held = (await kz.auditVerify(id)).chains[0]!.lastSeq;
      // A burst while the site is stopped: the parent has none of it.
      await record(site, 6, "offline");

      const t = await AuditTamper.open(site.dir, id);
      const last = await t.headSeq();
      const anchor = await t.anchorSeq();
      const s = held + 2;
      expect(last).toBeGreaterThanOrEqual(s + 3);
      await tamper(t, s, last);
      await t.close();

      const verified = await site.auditVerify();
      expect(verified.code).toBe(1);
      expect(verified.chains.find((c) => c.origin === id)).toMatchObject({ ok: false, ...local(s, anchor) });

      await site.serve();
      const status = await waitFor(() => kz.status(), (st) => st.audit.quarantined.some((q) => q.origin === id), 20_000, "quarantine at kz");
      const expected = parent(s, held);
      expect(status.audit.quarantined.find((q) => q.origin === id)).toMatchObject({ origin: id, epoch: 1, ...expected });
      const alarms = await kz.auditList(["--action", "audit.quarantine"]);
      expect(alarms.filter((a) => a.target === id).map((a) => a.details)).toEqual([{ epoch: 1, ...expected }]);
      const atRoot = await kz.auditVerify(id);
      expect(atRoot.code).toBe(1);
      expect(atRoot.chains[0]).toMatchObject({ origin: id, ok: true, quarantined: expected.reason });
      await waitFor(() => site.status(), (st) => st.parent?.auditQuarantinedByParent.includes(id) === true, 20_000, "the child to learn of it");
      await site.stop();
    },
  );

  it("audit resolve - an administrator accepts the break and the stream flows again", async () => {
    const id = "kz.t1"; // the deleted entry
    const site = new TestNode(id, join(kz.dir, "..", id));
    await site.serve();
    ok(await kz.cli(["audit", "resolve", "--site", id]));
    await waitFor(() => kz.auditVerify(id), (v) => v.code === 0 && v.chains[0]!.lastSeq >= 13, 20_000, "the stream to flow again");
    const resolved = await kz.auditList(["--action", "audit.resolve"]);
    expect(resolved.map((e) => e.target)).toEqual([id]);
    expect((await kz.status()).audit.quarantined.map((q) => q.origin)).not.toContain(id);
  });
});
