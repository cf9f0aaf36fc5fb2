import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalEncoding, canonicalJson, GENESIS_HASH, hashEntry } from "./audit-hash.ts";

const ENTRY = {
  origin: "kz.ala",
  epoch: 1,
  seq: 2,
  time_ms: 1_780_315_200_000,
  actor: "user:admin",
  action: "inventory.import",
  target: "Алматы",
  result: "ok",
  details: '{"n":1}',
  prev_hash: GENESIS_HASH,
};

// Written out by hand: the encoding is a cross-language contract, so the test must not
// rebuild it with the same code it checks.
const EXPECTED_ENCODING =
  "vmtree-audit-v1\n" +
  "6:kz.ala\n" +
  "1:1\n" +
  "1:2\n" +
  "13:1780315200000\n" +
  "10:user:admin\n" +
  "16:inventory.import\n" +
  "12:Алматы\n" +
  "2:ok\n" +
  '7:{"n":1}\n' +
  `64:${"0".repeat(64)}\n`;

// Also computed independently with `printf … | sha256sum`.
const EXPECTED_HASH = "bd948f213c037e59438e04d423e017fbad86b38ace4398c98de49b996d0c435d";

describe("audit-hash", () => {
  it("GENESIS_HASH - is 64 zeros", () => {
    expect(GENESIS_HASH).toBe("0000000000000000000000000000000000000000000000000000000000000000");
  });

  it("canonicalEncoding - domain line, then length-prefixed UTF-8 fields in fixed order", () => {
    const bytes = canonicalEncoding(ENTRY);
    expect(bytes.equals(Buffer.from(EXPECTED_ENCODING, "utf8"))).toBe(true);
    expect(bytes.toString("utf8")).toBe(EXPECTED_ENCODING);
    expect(bytes.length).toBe(183);
  });

  it("canonicalEncoding - prefixes a Cyrillic field with its byte length, not its character length", () => {
    expect("Алматы".length).toBe(6);
    const bytes = canonicalEncoding(ENTRY);
    const start = bytes.indexOf(Buffer.from("12:"));
    expect(bytes.subarray(start, start + 3 + 12 + 1)).toEqual(
      Buffer.from([0x31, 0x32, 0x3a, 0xd0, 0x90, 0xd0, 0xbb, 0xd0, 0xbc, 0xd0, 0xb0, 0xd1, 0x82, 0xd1, 0x8b, 0x0a]),
    );
    expect(bytes.includes(Buffer.from("6:Алматы"))).toBe(false);
  });

  it("canonicalEncoding - ignores a hash field the entry already carries", () => {
    const withHash = { ...ENTRY, hash: "f".repeat(64) };
    expect(canonicalEncoding(withHash).toString("utf8")).toBe(EXPECTED_ENCODING);
  });

  it("canonicalEncoding - length prefixes keep shifted field boundaries apart", () => {
    const a = canonicalEncoding({ ...ENTRY, actor: "user:a", action: "b.c" });
    const b = canonicalEncoding({ ...ENTRY, actor: "user:a\n3:b", action: ".c" });
    expect(a.equals(b)).toBe(false);
  });

  it("canonicalEncoding - encodes empty fields as 0:", () => {
    const text = canonicalEncoding({ ...ENTRY, target: "", details: "" }).toString("utf8");
    expect(text).toBe(EXPECTED_ENCODING.replace("12:Алматы\n", "0:\n").replace('7:{"n":1}\n', "0:\n"));
  });

  it("hashEntry - is the lower-case hex SHA-256 of the canonical encoding", () => {
    expect(hashEntry(ENTRY)).toBe(EXPECTED_HASH);
    expect(hashEntry(ENTRY)).toBe(createHash("sha256").update(Buffer.from(EXPECTED_ENCODING, "utf8")).digest("hex"));
  });

  it("hashEntry - changes when any field changes", () => {
    const variants = [
      { origin: "kz.ast" },
      { epoch: 2 },
      { seq: 3 },
      { time_ms: ENTRY.time_ms + 1 },
      { actor: "user:other" },
      { action: "inventory.export" },
      { target: "Астана" },
      { result: "failed" },
      { details: '{"n":2}' },
      { prev_hash: "1".repeat(64) },
    ];
    const hashes = new Set(variants.map((variant) => hashEntry({ ...ENTRY, ...variant })));
    expect(hashes.size).toBe(variants.length);
    expect(hashes.has(EXPECTED_HASH)).toBe(false);
  });

  it("canonicalJson - sorts keys at every depth, without spaces", () => {
    const value = { b: 1, a: { z: [{ y: 1, x: 2 }, 3], c: null }, "Ж": "ж", A: true };
    expect(canonicalJson(value)).toBe('{"A":true,"a":{"c":null,"z":[{"x":2,"y":1},3]},"b":1,"Ж":"ж"}');
  });

  it("canonicalJson - gives the same text for objects built in different key orders", () => {
    expect(canonicalJson({ from: 1, to: 5, epoch: 2 })).toBe(canonicalJson({ epoch: 2, to: 5, from: 1 }));
    expect(canonicalJson({ epoch: 2, to: 5, from: 1 })).toBe('{"epoch":2,"from":1,"to":5}');
  });

  it("canonicalJson - keeps array order and scalars as JSON.stringify does", () => {
    expect(canonicalJson([3, 1, 2])).toBe("[3,1,2]");
    expect(canonicalJson("x")).toBe('"x"');
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson({})).toBe("{}");
  });
});
