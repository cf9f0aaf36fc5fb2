import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import type { PolicyBinding, PolicyDocument, PolicySet } from "../gen/vmtree/v1/policy.ts";
import { policySetHash, validateReceivedSet } from "./policy-set.ts";

function binding(fields: Partial<PolicyBinding>): PolicyBinding {
  return {
    id: "b1",
    subject: "user:x",
    role: "",
    action: "view_live",
    scope: "kz.ala",
    cameras: [],
    camera_types: [],
    effect: "deny",
    valid_from_ms: 0,
    valid_until_ms: 0,
    valid_until_implied: false,
    valid_from_implied: false,
    ...fields,
  };
}

function document(fields: Partial<PolicyDocument> = {}): PolicyDocument {
  return {
    roles: [{ name: "operator", actions: ["view_live", "ptz_control"] }],
    groups: [{ name: "duty", users: ["a.nurlanov"] }],
    bindings: [
      binding({ id: "duty-live", subject: "group:duty", role: "operator", action: "", effect: "allow", valid_until_ms: Date.parse("2027-06-01T00:00:00Z") }),
    ],
    max_policy_age_ms: 0,
    ...fields,
  };
}

/** A set of `author` with a correct hash (unsigned: signatures are checked apart, in policy-signature.ts). */
function signedSet(author: string, doc: PolicyDocument, version = 3): PolicySet {
  return { author, version, created_ms: 1, created_by: "user:admin", document: doc, sha256: policySetHash(author, version, doc), signature: Buffer.alloc(0), signer_chain_pem: "" };
}

function refusal(set: PolicySet, holder: string): string {
  try {
    validateReceivedSet(set, holder);
  } catch (reason) {
    expect(reason).toBeInstanceOf(VmtreeError);
    expect((reason as VmtreeError).code).toBe("invalid_argument");
    return (reason as VmtreeError).rawMessage;
  }
  throw new Error("the set was accepted");
}

describe("policySetHash", () => {
  it("policySetHash - hashes the documented canonical JSON", () => {
    const doc: PolicyDocument = {
      roles: [{ name: "r", actions: ["view_live"] }],
      groups: [{ name: "g", users: ["x"] }],
      bindings: [binding({ action: "", scope: "kz" })],
      max_policy_age_ms: 0,
    };
    const canonical =
      '{"author":"kz","document":{"bindings":[{"action":"","camera_types":[],"cameras":[],"effect":"deny",' +
      '"id":"b1","role":"","scope":"kz","subject":"user:x","valid_from_implied":false,"valid_from_ms":0,"valid_until_implied":false,"valid_until_ms":0}],' +
      '"groups":[{"name":"g","users":["x"]}],"max_policy_age_ms":0,"roles":[{"actions":["view_live"],"name":"r"}]},"version":1}';
    expect(policySetHash("kz", 1, doc)).toBe(createHash("sha256").update(canonical).digest("hex"));
  });

  it("policySetHash - ignores property order and extra properties", () => {
    const doc = document();
    const reordered = { max_policy_age_ms: 0, bindings: doc.bindings.map((b) => ({ note: "x", ...b })), groups: doc.groups, roles: doc.roles };
    expect(policySetHash("kz", 2, reordered)).toBe(policySetHash("kz", 2, doc));
  });

  it("policySetHash - changes with the author, the version and any field", () => {
    const hash = policySetHash("kz", 2, document());
    expect(policySetHash("kz.ala", 2, document())).not.toBe(hash);
    expect(policySetHash("kz", 3, document())).not.toBe(hash);
    expect(policySetHash("kz", 2, document({ max_policy_age_ms: 1 }))).not.toBe(hash);
    const [first] = document().bindings;
    expect(policySetHash("kz", 2, document({ bindings: [{ ...first!, valid_until_implied: true }] }))).not.toBe(hash);
  });
});

describe("validateReceivedSet", () => {
  it("validateReceivedSet - accepts a valid set of the parent and of the root", () => {
    expect(() => validateReceivedSet(signedSet("kz.ala", document()), "kz.ala.metro-01")).not.toThrow();
    expect(() => validateReceivedSet(signedSet("kz", document()), "kz.ala.metro-01")).not.toThrow();
  });

  it("validateReceivedSet - R-22 does not re-check the 12-month term against this node's clock", () => {
    const [first] = document().bindings;
    const long = document({ bindings: [{ ...first!, valid_from_ms: Date.parse("2026-01-01T00:00:00Z"), valid_until_ms: Date.parse("2029-01-01T00:00:00Z") }] });
    expect(() => validateReceivedSet(signedSet("kz.ala", long), "kz.ala.metro-01")).not.toThrow();
  });

  it.each([
    ["the holder itself", "kz.ala", "kz.ala"],
    ["a sibling", "kz.ast", "kz.ala"],
    ["a descendant", "kz.ala.metro-01", "kz.ala"],
    ["a site that only starts like an ancestor", "kz.al", "kz.ala"],
  ])("validateReceivedSet - refuses an author that is %s", (_, author, holder) => {
    expect(refusal(signedSet(author, document({ bindings: [] })), holder)).toBe(
      `policy set of ${author} version 3: ${author} is not an ancestor of ${holder}, which received it`,
    );
  });

  it("validateReceivedSet - refuses an author that is not a site id", () => {
    expect(refusal(signedSet("KZ", document()), "kz.ala")).toBe(
      'policy set from "KZ": invalid site id "KZ": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and \'-\', starting with a letter or digit',
    );
  });

  it("validateReceivedSet - refuses version 0", () => {
    expect(refusal(signedSet("kz", document(), 0), "kz.ala")).toBe("policy set of kz version 0: version 0 is not a whole number from 1 to 2147483647");
  });

  it("validateReceivedSet - refuses a set without a document", () => {
    expect(refusal({ ...signedSet("kz", document()), document: undefined }, "kz.ala")).toBe("policy set of kz version 3: it has no document");
  });

  it("validateReceivedSet - refuses a hash that does not match the content", () => {
    const set = signedSet("kz", document());
    const tampered = { ...set, document: document({ max_policy_age_ms: 60_000 }) };
    expect(refusal(tampered, "kz.ala")).toBe(
      `policy set of kz version 3: sha256 "${set.sha256.slice(0, 60)}…" does not match its content (${policySetHash("kz", 3, tampered.document)})`,
    );
  });

  it("validateReceivedSet - refuses a scope outside the author's subtree", () => {
    const doc = document({ bindings: [binding({ scope: "kz.ast" })] });
    expect(refusal(signedSet("kz.ala", doc), "kz.ala.metro-01")).toBe(
      'policy set of kz.ala version 3: bindings[0] (id b1), field scope: "kz.ast" is outside the subtree of kz.ala, the author',
    );
  });

  it("validateReceivedSet - refuses unknown actions, undefined roles and groups, bad effects", () => {
    const cases: [Partial<PolicyBinding>, string][] = [
      [{ action: "view_all" }, 'field action: "view_all" is not an action (expected one of view_live, view_archive, export_fragment, ptz_control, manage_cameras, manage_policies, read_audit)'],
      [{ action: "", role: "viewer" }, 'field role: "viewer" is not a role that roles defines'],
      [{ subject: "group:night" }, 'field subject: "group:night" names a group that groups does not define'],
      [{ effect: "" }, 'field effect: "" is not an effect (expected allow or deny)'],
      [{ effect: "allow" }, "field valid_until: an allow has no end; a grant lasts at most 12 months (R-22)"],
    ];
    for (const [fields, message] of cases) {
      const doc = document({ bindings: [binding(fields)] });
      expect(refusal(signedSet("kz", doc), "kz.ala")).toBe(`policy set of kz version 3: bindings[0] (id b1), ${message}`);
    }
  });

  it("validateReceivedSet - refuses valid_until not after valid_from", () => {
    const at = Date.parse("2027-01-01T00:00:00Z");
    const doc = document({ bindings: [binding({ valid_from_ms: at, valid_until_ms: at })] });
    expect(refusal(signedSet("kz", doc), "kz.ala")).toBe(
      "policy set of kz version 3: bindings[0] (id b1), field valid_until: 2027-01-01T00:00:00.000Z is not after valid_from 2027-01-01T00:00:00.000Z",
    );
  });

  it("validateReceivedSet - accepts the implicit id bindings[N] only at position N", () => {
    const ok = document({ bindings: [binding({ id: "bindings[0]" }), binding({ id: "bindings[1]" })] });
    expect(() => validateReceivedSet(signedSet("kz", ok), "kz.ala")).not.toThrow();
    const moved = document({ bindings: [binding({ id: "bindings[1]" })] });
    expect(refusal(signedSet("kz", moved), "kz.ala")).toBe(
      "policy set of kz version 3: bindings[0], field id: \"bindings[1]\" is not a binding id (1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit)",
    );
  });

  it("validateReceivedSet - refuses duplicate role names and duplicate binding ids", () => {
    const roles = document({ roles: [{ name: "r", actions: ["view_live"] }, { name: "r", actions: ["read_audit"] }], bindings: [] });
    expect(refusal(signedSet("kz", roles), "kz.ala")).toBe("policy set of kz version 3: roles: role r is defined twice");
    const ids = document({ bindings: [binding({}), binding({})] });
    expect(refusal(signedSet("kz", ids), "kz.ala")).toBe(
      'policy set of kz version 3: bindings[1] (id b1), field id: "b1" is the id of an earlier binding too; ids must be unique',
    );
  });

  it("validateReceivedSet - refuses more than 100,000 bindings and a max_policy_age over 10 years", () => {
    const many = document({ bindings: Array.from({ length: 100_001 }, (_, index) => binding({ id: `b${index}` })) });
    expect(refusal(signedSet("kz", many), "kz.ala")).toBe("policy set of kz version 3: field bindings: 100001 bindings are more than the limit of 100000");
    const old = document({ max_policy_age_ms: 3651 * 86_400_000 });
    expect(refusal(signedSet("kz", old), "kz.ala")).toBe("policy set of kz version 3: field max_policy_age: 315446400000 ms is not between 0 and 10 years");
  });
});
