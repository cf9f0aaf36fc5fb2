import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { assertSiteId, checkSiteId, isInSubtree, parentOf, siteDnsName, siteFromDnsName } from "./site-id.ts";

const SEGMENT_RULE = "must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit";

/** The error of a refused id; fails the test when the id is accepted. */
function refusal(id: string): VmtreeError {
  const checked = checkSiteId(id);
  if (checked.ok) throw new Error(`${JSON.stringify(id)} was accepted`);
  return checked.error;
}

describe("checkSiteId", () => {
  it.each([
    ["a root", "kz"],
    ["a region", "kz.ala"],
    ["a site with digits and '-'", "kz.ala.metro-01"],
    ["a 32-character segment", `kz.${"a".repeat(32)}`],
    ["8 segments", "a.b.c.d.e.f.g.h"],
    ["a segment starting with a digit", "kz.01"],
    ["a segment ending with '-'", "kz.a-"],
  ])("checkSiteId - accepts %s", (_, id) => {
    expect(checkSiteId(id)).toEqual({ ok: true, value: id });
  });

  it("checkSiteId - refuses an empty id", () => {
    const error = refusal("");
    expect(error).toBeInstanceOf(VmtreeError);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe('[invalid_argument] invalid site id "": it is empty');
  });

  it("checkSiteId - refuses 9 segments", () => {
    const error = refusal("a.b.c.d.e.f.g.h.i");
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe('[invalid_argument] invalid site id "a.b.c.d.e.f.g.h.i": it has 9 segments, at most 8 are allowed');
  });

  it.each([
    ["a 33-character segment", `kz.${"a".repeat(33)}`, "a".repeat(33)],
    ["an upper-case segment", "kz.Ala", "Ala"],
    ["an upper-case root", "KZ", "KZ"],
    ["a leading '-'", "kz.-ala", "-ala"],
    ["an empty segment", "kz..a", ""],
    ["a trailing dot", "kz.ala.", ""],
    ["a leading dot", ".kz", ""],
    ["a space", "kz.al a", "al a"],
    ["a trailing space", "kz ", "kz "],
    ["a trailing newline", "kz\n", "kz\n"],
    ["an underscore", "kz.ala_1", "ala_1"],
    ["unicode letters", "kz.алматы", "алматы"],
    ["a letter with a diacritic", "kz.ş", "ş"],
  ])("checkSiteId - refuses %s", (_, id, segment) => {
    const error = refusal(id);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(`[invalid_argument] invalid site id ${JSON.stringify(id)}: segment ${JSON.stringify(segment)} ${SEGMENT_RULE}`);
    expect(error.rawMessage).toBe(`invalid site id ${JSON.stringify(id)}: segment ${JSON.stringify(segment)} ${SEGMENT_RULE}`);
  });

  it("checkSiteId - reports the first bad segment", () => {
    expect(refusal("kz.A.B").rawMessage).toBe(`invalid site id "kz.A.B": segment "A" ${SEGMENT_RULE}`);
  });

  it("checkSiteId - reports depth before a bad segment", () => {
    expect(refusal("A.b.c.d.e.f.g.h.i").rawMessage).toBe('invalid site id "A.b.c.d.e.f.g.h.i": it has 9 segments, at most 8 are allowed');
  });
});

describe("assertSiteId", () => {
  it("assertSiteId - returns a valid id", () => {
    expect(assertSiteId("kz.ala")).toBe("kz.ala");
  });

  it("assertSiteId - throws the checkSiteId error", () => {
    expect(() => assertSiteId("kz..a")).toThrow(new VmtreeError("invalid_argument", `invalid site id "kz..a": segment "" ${SEGMENT_RULE}`));
    try {
      assertSiteId("Kz");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(VmtreeError);
      expect((error as VmtreeError).code).toBe("invalid_argument");
    }
  });
});

describe("parentOf", () => {
  it.each([
    ["kz", undefined],
    ["kz.ala", "kz"],
    ["kz.ala.metro-01", "kz.ala"],
    ["a.b.c.d.e.f.g.h", "a.b.c.d.e.f.g"],
  ])("parentOf - of %s is %s", (id, parent) => {
    expect(parentOf(id)).toBe(parent);
  });
});

describe("isInSubtree", () => {
  it.each([
    ["kz", "kz", true],
    ["kz.ala", "kz", true],
    ["kz.ala.metro-01", "kz", true],
    ["kz.ala.metro-01", "kz.ala", true],
    ["kz.ala", "kz.al", false],
    ["kz.al", "kz.ala", false],
    ["kz", "kz.ala", false],
    ["kz.ast", "kz.ala", false],
    ["kzx", "kz", false],
    ["kz.ala-2", "kz.ala", false],
    ["ru.ala", "kz", false],
  ])("isInSubtree - %s in the subtree of %s is %s", (id, ancestor, expected) => {
    expect(isInSubtree(id, ancestor)).toBe(expected);
  });
});

describe("siteDnsName", () => {
  it.each([
    ["kz", "kz.vmtree"],
    ["kz.ala", "ala.kz.vmtree"],
    ["kz.ala.metro-01", "metro-01.ala.kz.vmtree"],
  ])("siteDnsName - of %s is %s", (id, name) => {
    expect(siteDnsName(id)).toBe(name);
  });

  it.each(["kz", "kz.ala", "kz.ala.metro-01", "a.b.c.d.e.f.g.h", `kz.${"z".repeat(32)}`])(
    "siteDnsName - round-trips %s through siteFromDnsName",
    (id) => {
      expect(siteFromDnsName(siteDnsName(id))).toBe(id);
    },
  );
});

describe("siteFromDnsName", () => {
  it.each([
    ["metro-01.ala.kz.vmtree", "kz.ala.metro-01"],
    ["kz.vmtree", "kz"],
  ])("siteFromDnsName - reads %s as %s", (name, id) => {
    expect(siteFromDnsName(name)).toBe(id);
  });

  it.each([
    ["another domain", "ala.kz.example.com"],
    ["vmtree as a prefix", "vmtree.ala.kz"],
    ["the bare suffix", "vmtree"],
    ["an empty label before the suffix", ".vmtree"],
    ["an empty name", ""],
    ["a suffix without its dot", "kzvmtree"],
    ["a wildcard", "*.kz.vmtree"],
    ["an empty label", "ala..kz.vmtree"],
    ["upper case", "ALA.KZ.vmtree"],
    ["9 labels", "i.h.g.f.e.d.c.b.a.vmtree"],
    ["an IP address", "10.0.0.1"],
  ])("siteFromDnsName - refuses %s (%s)", (_, name) => {
    expect(siteFromDnsName(name)).toBeUndefined();
  });
});
