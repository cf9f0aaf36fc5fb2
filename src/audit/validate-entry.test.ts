import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import { GENESIS_HASH, hashEntry } from "./audit-hash.ts";
import { MAX_AUDIT_BATCH, validateAuditBatch } from "./validate-entry.ts";

function entry(changes: Partial<AuditEntry> = {}): AuditEntry {
  const unhashed = {
    origin: "kz.ala",
    epoch: 1,
    seq: 1,
    time_ms: Date.UTC(2026, 5, 1),
    actor: "user:admin",
    action: "inventory.import",
    target: "cameras.csv",
    result: "ok",
    details: "{}",
    prev_hash: GENESIS_HASH,
  };
  return { ...unhashed, hash: hashEntry(unhashed), ...changes };
}

/** The error `validateAuditBatch` throws; fails the test when the batch passes. */
function refusal(entries: AuditEntry[], child = "kz.ala"): VmtreeError {
  try {
    validateAuditBatch(entries, child);
  } catch (error) {
    expect(error).toBeInstanceOf(VmtreeError);
    return error as VmtreeError;
  }
  throw new Error("the batch was accepted");
}

describe("validateAuditBatch", () => {
  it("validateAuditBatch - MAX_AUDIT_BATCH is 5000", () => {
    expect(MAX_AUDIT_BATCH).toBe(5000);
  });

  it("validateAuditBatch - accepts entries of the child and of its subtree, and an empty batch", () => {
    expect(() => validateAuditBatch([], "kz.ala")).not.toThrow();
    expect(() => validateAuditBatch([entry(), entry({ origin: "kz.ala.metro-01" })], "kz.ala")).not.toThrow();
  });

  it.each([
    ["a sibling", "kz.ast"],
    ["the parent", "kz"],
    ["a site sharing the child's prefix", "kz.alamaty"],
    ["another tree", "uz.ala"],
  ])("validateAuditBatch - refuses an origin outside the subtree (%s) with permission_denied", (_what, origin) => {
    const error = refusal([entry({ origin })]);
    expect(error.code).toBe("permission_denied");
    expect(error.message).toBe(`[permission_denied] site kz.ala may not send audit entries for ${origin}`);
  });

  it("validateAuditBatch - refuses the whole batch when one origin is outside the subtree", () => {
    const error = refusal([entry(), entry({ seq: 2 }), entry({ origin: "kz.ast" })]);
    expect(error.code).toBe("permission_denied");
  });

  it("validateAuditBatch - refuses a malformed origin with invalid_argument", () => {
    const error = refusal([entry({ origin: "KZ.ala" })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(
      `[invalid_argument] invalid site id "KZ.ala": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit`,
    );
    expect(refusal([entry({ origin: "" })]).message).toBe('[invalid_argument] invalid site id "": it is empty');
  });

  it.each([
    ["epoch", { epoch: 0 }, '"0"'],
    ["epoch", { epoch: -1 }, '"-1"'],
    ["epoch", { epoch: 1.5 }, '"1.5"'],
    ["epoch", { epoch: Number.NaN }, '"NaN"'],
    ["seq", { seq: 0 }, '"0"'],
    ["seq", { seq: 2 ** 53 }, '"9007199254740992"'],
    ["time_ms", { time_ms: -1 }, '"-1"'],
    ["time_ms", { time_ms: 1.25 }, '"1.25"'],
    ["hash", { hash: "A".repeat(64) }, `"${"A".repeat(64)}"`],
    ["hash", { hash: "a".repeat(63) }, `"${"a".repeat(63)}"`],
    ["hash", { hash: "" }, '""'],
    ["prev_hash", { prev_hash: "g".repeat(64) }, `"${"g".repeat(64)}"`],
    ["prev_hash", { prev_hash: "0".repeat(65) }, `"${"0".repeat(65)}"`],
  ] as const)("validateAuditBatch - refuses a bad %s (%o) with invalid_argument", (field, changes, shown) => {
    const error = refusal([entry(changes)]);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(`[invalid_argument] invalid audit entry ${field}: ${shown}`);
  });

  it("validateAuditBatch - shows at most 80 characters of a bad hash", () => {
    const error = refusal([entry({ hash: "x".repeat(200) })]);
    expect(error.message).toBe(`[invalid_argument] invalid audit entry hash: "${"x".repeat(80)}"`);
  });

  it("validateAuditBatch - accepts the largest safe numbers and a zero time", () => {
    expect(() => validateAuditBatch([entry({ seq: Number.MAX_SAFE_INTEGER, time_ms: 0 })], "kz.ala")).not.toThrow();
  });

  it.each(["actor", "action", "target", "result"] as const)(
    "validateAuditBatch - refuses a %s over 512 characters and shows its first 32",
    (field) => {
      expect(() => validateAuditBatch([entry({ [field]: "ж".repeat(512) })], "kz.ala")).not.toThrow();
      const error = refusal([entry({ [field]: "ж".repeat(513) })]);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toBe(`[invalid_argument] invalid audit entry ${field}: "${"ж".repeat(32)}…"`);
    },
  );

  it("validateAuditBatch - refuses details over 16 KiB", () => {
    const details = (n: number) => `{"d":"${"d".repeat(n - 8)}"}`;
    expect(details(16 * 1024)).toHaveLength(16 * 1024);
    expect(() => validateAuditBatch([entry({ details: details(16 * 1024) })], "kz.ala")).not.toThrow();
    const error = refusal([entry({ details: details(16 * 1024 + 1) })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(`[invalid_argument] invalid audit entry details: "{\\"d\\":\\"${"d".repeat(26)}…"`);
  });

  it.each([["not-json{"], ["[1,2]"], ["null"], ["7"], [""]])("validateAuditBatch - refuses details %j: every ancestor lists them as an object", (details) => {
    const error = refusal([entry({ details })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(`[invalid_argument] invalid audit entry details: ${JSON.stringify(`${details}…`)}`);
  });

  it("validateAuditBatch - accepts details nested 32 deep and refuses 33, before parsing them", () => {
    const nested = (depth: number) => `{"a":${"[".repeat(depth - 1)}1${"]".repeat(depth - 1)}}`;
    expect(() => validateAuditBatch([entry({ details: nested(32) })], "kz.ala")).not.toThrow();
    expect(refusal([entry({ details: nested(33) })]).message).toBe(`[invalid_argument] invalid audit entry details: "{\\"a\\":${"[".repeat(27)}…"`);
    // Deep enough to overflow JSON.parse's recursion elsewhere, yet within the size limit.
    expect(refusal([entry({ details: nested(5000).slice(0, 16_000) })]).code).toBe("invalid_argument");
    // Brackets inside strings do not count.
    expect(() => validateAuditBatch([entry({ details: JSON.stringify({ note: "[".repeat(100), q: '\\"[' }) })], "kz.ala")).not.toThrow();
  });

  it("validateAuditBatch - refuses a time_ms beyond what a Date holds", () => {
    expect(() => validateAuditBatch([entry({ time_ms: 8.64e15 })], "kz.ala")).not.toThrow();
    const error = refusal([entry({ time_ms: 8.64e15 + 1 })]);
    expect(error.message).toBe('[invalid_argument] invalid audit entry time_ms: "8640000000000001"');
  });

  it("validateAuditBatch - reports the first problem in field order", () => {
    const error = refusal([entry({ epoch: 0, seq: 0, hash: "" })]);
    expect(error.message).toBe('[invalid_argument] invalid audit entry epoch: "0"');
  });

  it("validateAuditBatch - does not check the chain: a wrong hash of the right shape passes", () => {
    expect(() => validateAuditBatch([entry({ hash: "f".repeat(64), seq: 9 })], "kz.ala")).not.toThrow();
  });

  it("validateAuditBatch - accepts MAX_AUDIT_BATCH entries and refuses one more", () => {
    const one = entry();
    expect(() => validateAuditBatch(Array.from({ length: MAX_AUDIT_BATCH }, () => one), "kz.ala")).not.toThrow();
    const error = refusal(Array.from({ length: MAX_AUDIT_BATCH + 1 }, () => one));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe("[invalid_argument] an audit batch carries at most 5000 entries, got 5001");
  });

  it("validateAuditBatch - counts the batch before looking at any entry", () => {
    const error = refusal(Array.from({ length: MAX_AUDIT_BATCH + 1 }, () => entry({ origin: "kz.ast" })));
    expect(error.code).toBe("invalid_argument");
  });
});
