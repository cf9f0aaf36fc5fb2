import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { VmtreeError } from "../errors.ts";
import type { PolicyBinding, PolicyDocument } from "../gen/vmtree/v1/policy.ts";
import { MAX_POLICY_BYTES, parsePolicyDocument, type PolicyContext } from "./policy-document.ts";

const NOW = Date.parse("2026-12-04T00:00:00Z");
const CONTEXT: PolicyContext = { author: "kz.ala", nowMs: NOW };

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

function parse(text: string | Uint8Array, context: Partial<PolicyContext> = {}, file = "policy.yaml") {
  return parsePolicyDocument(file, typeof text === "string" ? encode(text) : text, { ...CONTEXT, ...context });
}

function parsed(text: string | Uint8Array, context: Partial<PolicyContext> = {}, file = "policy.yaml"): PolicyDocument {
  const result = parse(text, context, file);
  if (!result.ok) throw result.error;
  return result.value;
}

/** The message of the refusal, without the `[invalid_input]` prefix; fails when the file is accepted. */
function refusal(text: string | Uint8Array, context: Partial<PolicyContext> = {}, file = "policy.yaml"): string {
  const result = parse(text, context, file);
  if (result.ok) throw new Error(`accepted: ${JSON.stringify(result.value)}`);
  expect(result.error.code).toBe("invalid_input");
  return (result.error as VmtreeError).rawMessage;
}

/**
 * A document whose roles (operator, auditor) and group (duty) fill lines 1 to 6, so that
 * binding 0 starts on line 8 and each binding's lines follow in the order given.
 */
function withBindings(...bindings: string[][]): string {
  const head = [
    "roles:",
    "  operator: [view_live, ptz_control]",
    "  auditor: [read_audit]",
    "groups:",
    "  duty: [a.nurlanov, b.sadykova]",
    "",
    "bindings:",
  ];
  const body = bindings.flatMap((fields) => fields.map((field, index) => `${index === 0 ? "  - " : "    "}${field}`));
  return [...head, ...body].join("\n") + "\n";
}

/** A valid allow, lines 8 to 14 when it is binding 0. */
const DUTY_LIVE = [
  "id: duty-live",
  "subject: group:duty",
  "role: operator",
  "scope: kz.ala",
  "effect: allow",
  "valid_from: 2026-12-04",
  "valid_until: 2027-06-01",
];

/** DUTY_LIVE with `field` replaced (or added, or, with value undefined, removed). */
function dutyLive(field: string, value: string | undefined): string[] {
  const others = DUTY_LIVE.filter((line) => !line.startsWith(`${field}:`));
  const at = DUTY_LIVE.findIndex((line) => line.startsWith(`${field}:`));
  if (value === undefined) return others;
  const line = `${field}: ${value}`;
  return at < 0 ? [...DUTY_LIVE, line] : DUTY_LIVE.map((old, index) => (index === at ? line : old));
}

function binding(fields: Partial<PolicyBinding>): PolicyBinding {
  return {
    id: "",
    subject: "",
    role: "",
    action: "",
    scope: "",
    cameras: [],
    camera_types: [],
    effect: "",
    valid_from_ms: 0,
    valid_until_ms: 0,
    valid_until_implied: false,
    valid_from_implied: false,
    ...fields,
  };
}

const DUTY_LIVE_BINDING = binding({
  id: "duty-live",
  subject: "group:duty",
  role: "operator",
  scope: "kz.ala",
  effect: "allow",
  valid_from_ms: Date.parse("2026-12-04T00:00:00Z"),
  valid_until_ms: Date.parse("2027-06-01T00:00:00Z"),
});

describe("parsePolicyDocument - accepted files", () => {
  it("parsePolicyDocument - reads roles and groups sorted by name, bindings in file order", () => {
    const text = withBindings(DUTY_LIVE, ["subject: user:auditor.ala", "role: auditor", "scope: kz.ala.metro-01", "effect: deny"]);
    expect(parsed(text)).toEqual({
      roles: [
        { name: "auditor", actions: ["read_audit"] },
        { name: "operator", actions: ["view_live", "ptz_control"] },
      ],
      groups: [{ name: "duty", users: ["a.nurlanov", "b.sadykova"] }],
      bindings: [
        DUTY_LIVE_BINDING,
        binding({ id: "bindings[1]", subject: "user:auditor.ala", role: "auditor", scope: "kz.ala.metro-01", effect: "deny" }),
      ],
      max_policy_age_ms: 0,
    });
  });

  it("parsePolicyDocument - reads the same document from JSON", () => {
    const json = JSON.stringify({
      roles: { operator: ["view_live", "ptz_control"], auditor: ["read_audit"] },
      groups: { duty: ["a.nurlanov", "b.sadykova"] },
      max_policy_age: "7d",
      bindings: [
        {
          id: "duty-live",
          subject: "group:duty",
          role: "operator",
          scope: "kz.ala",
          effect: "allow",
          valid_from: "2026-12-04",
          valid_until: "2027-06-01",
        },
      ],
    }, null, 2);
    expect(parsed(json, {}, "policy.json")).toEqual({
      roles: [
        { name: "auditor", actions: ["read_audit"] },
        { name: "operator", actions: ["view_live", "ptz_control"] },
      ],
      groups: [{ name: "duty", users: ["a.nurlanov", "b.sadykova"] }],
      bindings: [DUTY_LIVE_BINDING],
      max_policy_age_ms: 7 * 86_400_000,
    });
  });

  it("parsePolicyDocument - accepts a file with only bindings, and an empty list of them", () => {
    expect(parsed("bindings: []\n")).toEqual({ roles: [], groups: [], bindings: [], max_policy_age_ms: 0 });
  });

  it("parsePolicyDocument - accepts a UTF-8 BOM", () => {
    const text = withBindings(DUTY_LIVE);
    expect(parsed(new Uint8Array([0xef, 0xbb, 0xbf, ...encode(text)]))).toEqual(parsed(text));
  });

  it("parsePolicyDocument - accepts the author itself as scope, and every site below it", () => {
    const text = withBindings(dutyLive("scope", "kz.ala"), [...dutyLive("scope", "kz.ala.metro-01.gate-2"), ].map((line) => line.replace("duty-live", "deep")));
    expect(parsed(text).bindings.map((b) => b.scope)).toEqual(["kz.ala", "kz.ala.metro-01.gate-2"]);
  });

  it("parsePolicyDocument - reads cameras, camera_types, a single action and offsets", () => {
    const text = withBindings([
      "id: gate-ptz",
      "subject: user:b.sadykova",
      "action: ptz_control",
      "scope: kz.ala.metro-01",
      "cameras: [metro-01-cam-001, metro-01-cam-002]",
      "camera_types: [outdoor_ptz_overview]",
      "effect: allow",
      "valid_from: 2026-12-04T09:00:00+06:00",
      "valid_until: 2027-12-04T03:00:00Z",
    ]);
    expect(parsed(text).bindings).toEqual([
      binding({
        id: "gate-ptz",
        subject: "user:b.sadykova",
        action: "ptz_control",
        scope: "kz.ala.metro-01",
        cameras: ["metro-01-cam-001", "metro-01-cam-002"],
        camera_types: ["outdoor_ptz_overview"],
        effect: "allow",
        valid_from_ms: Date.parse("2026-12-04T03:00:00Z"),
        valid_until_ms: Date.parse("2027-12-04T03:00:00Z"),
      }),
    ]);
  });

  it("parsePolicyDocument - a deny may leave out both dates: 0 means unbounded", () => {
    const text = withBindings(["subject: user:x", "action: export_fragment", "scope: kz.ala", "effect: deny"]);
    expect(parsed(text).bindings[0]).toEqual(
      binding({ id: "bindings[0]", subject: "user:x", action: "export_fragment", scope: "kz.ala", effect: "deny" }),
    );
  });

  it("parsePolicyDocument - reads the example policy of kz (examples/policy.yaml)", () => {
    const content = readFileSync(new URL("../../examples/policy.yaml", import.meta.url));
    const document = parsed(content, { author: "kz", nowMs: NOW });
    expect(document.roles.map((role) => role.name)).toEqual(["auditor", "investigator", "operator"]);
    expect(document.groups.map((group) => group.name)).toEqual(["ala-duty-officers", "investigators"]);
    expect(document.max_policy_age_ms).toBe(72 * 3_600_000);
    expect(document.bindings.map((b) => [b.id, b.effect, b.valid_until_ms, b.valid_until_implied])).toEqual([
      ["ala-duty-live", "allow", Date.parse("2027-11-30T00:00:00Z"), false],
      ["investigations-metro", "allow", Date.parse("2027-06-07T04:00:00Z"), false],
      ["road-traffic-archive", "allow", Date.parse("2027-03-31T00:00:00Z"), false],
      ["national-audit", "allow", Date.parse("2027-12-04T00:00:00Z"), true],
      ["no-export-akimat-entries", "deny", 0, false],
    ]);
  });
});

describe("parsePolicyDocument - the 12-month term (R-22)", () => {
  it("parsePolicyDocument - accepts an allow of exactly 12 months", () => {
    const text = withBindings(dutyLive("valid_until", "2027-12-04"));
    expect(parsed(text).bindings[0]?.valid_until_ms).toBe(Date.parse("2027-12-04T00:00:00Z"));
  });

  it("parsePolicyDocument - R-22 refuses an allow one second longer than 12 months, naming the latest end", () => {
    const text = withBindings(dutyLive("valid_until", "2027-12-04T00:00:01Z"));
    expect(refusal(text)).toBe(
      'policy.yaml line 14, bindings[0] (id duty-live), field valid_until: "2027-12-04T00:00:01Z" is more than 12 months after ' +
        "valid_from 2026-12-04T00:00:00.000Z: a grant lasts at most 12 months (R-22), so it must end by 2027-12-04T00:00:00.000Z",
    );
  });

  it("parsePolicyDocument - R-22 counts from now when valid_from is left out", () => {
    const text = withBindings(dutyLive("valid_from", undefined).map((line) => line.replace("2027-06-01", "2028-01-01")));
    expect(refusal(text)).toBe(
      'policy.yaml line 13, bindings[0] (id duty-live), field valid_until: "2028-01-01" is more than 12 months after ' +
        "now (2026-12-04T00:00:00.000Z): a grant lasts at most 12 months (R-22), so it must end by 2027-12-04T00:00:00.000Z",
    );
  });

  it("parsePolicyDocument - R-22 counts calendar months: from Feb 29 the term ends on Feb 28", () => {
    const from = dutyLive("valid_from", "2028-02-29");
    expect(parsed(withBindings(from.map((l) => l.replace("2027-06-01", "2029-02-28"))), { nowMs: Date.parse("2028-01-01T00:00:00Z") }).bindings[0]?.valid_until_ms)
      .toBe(Date.parse("2029-02-28T00:00:00Z"));
    expect(refusal(withBindings(from.map((l) => l.replace("2027-06-01", "2029-03-01"))))).toContain("so it must end by 2029-02-28T00:00:00.000Z");
  });

  it("parsePolicyDocument - R-22 an allow without valid_until ends 12 months after valid_from", () => {
    const document = parsed(withBindings(dutyLive("valid_until", undefined)));
    expect(document.bindings[0]).toEqual({ ...DUTY_LIVE_BINDING, valid_until_ms: Date.parse("2027-12-04T00:00:00Z"), valid_until_implied: true });
  });

  it("parsePolicyDocument - R-22 an allow without dates starts now and ends 12 months after", () => {
    const text = withBindings(dutyLive("valid_until", undefined).filter((line) => !line.startsWith("valid_from")));
    const nowMs = Date.parse("2026-12-10T15:30:00Z");
    expect(parsed(text, { nowMs }).bindings[0]).toEqual({
      ...DUTY_LIVE_BINDING,
      valid_from_ms: nowMs,
      valid_from_implied: true,
      valid_until_ms: Date.parse("2027-12-10T15:30:00Z"),
      valid_until_implied: true,
    });
  });

  it("parsePolicyDocument - R-22 re-applying an unchanged allow keeps its implied start; a new valid_until is a new grant from now", () => {
    const text = withBindings(dutyLive("valid_until", undefined).filter((line) => !line.startsWith("valid_from")));
    const first = parsed(text, { nowMs: Date.parse("2026-12-10T15:30:00Z") });
    const again = parsed(text, { nowMs: Date.parse("2027-03-01T00:00:00Z"), previous: first });
    expect(again.bindings[0]!.valid_from_ms).toBe(Date.parse("2026-12-10T15:30:00Z"));
    const renewedText = withBindings(dutyLive("valid_until", "2027-12-31").filter((line) => !line.startsWith("valid_from")));
    const renewed = parsed(renewedText, { nowMs: Date.parse("2027-03-01T00:00:00Z"), previous: first });
    expect(renewed.bindings[0]).toMatchObject({ valid_from_ms: Date.parse("2027-03-01T00:00:00Z"), valid_from_implied: true, valid_until_implied: false });
  });

  it("parsePolicyDocument - R-22 re-applying an unchanged allow keeps its implied end instead of renewing it", () => {
    const text = withBindings(dutyLive("valid_until", undefined).filter((line) => !line.startsWith("valid_from")));
    const first = parsed(text, { nowMs: NOW });
    const again = parsed(text, { nowMs: Date.parse("2027-03-01T00:00:00Z"), previous: first });
    expect(again.bindings[0]?.valid_until_ms).toBe(Date.parse("2027-12-04T00:00:00Z"));
    expect(again.bindings[0]?.valid_until_implied).toBe(true);
  });

  it("parsePolicyDocument - R-22 a changed allow gets a new implied end", () => {
    const text = withBindings(dutyLive("valid_until", undefined).filter((line) => !line.startsWith("valid_from")));
    const first = parsed(text, { nowMs: NOW });
    const changed = text.replace("scope: kz.ala", "scope: kz.ala.metro-01");
    const again = parsed(changed, { nowMs: Date.parse("2027-03-01T00:00:00Z"), previous: first });
    expect(again.bindings[0]?.valid_until_ms).toBe(Date.parse("2028-03-01T00:00:00Z"));
  });

  it("parsePolicyDocument - R-22 an end the previous version gave explicitly is not reused", () => {
    const explicit = parsed(withBindings(dutyLive("valid_from", undefined)), { nowMs: NOW });
    const implied = withBindings(dutyLive("valid_from", undefined).filter((line) => !line.startsWith("valid_until")));
    expect(parsed(implied, { nowMs: NOW, previous: explicit }).bindings[0]?.valid_until_ms).toBe(Date.parse("2027-12-04T00:00:00Z"));
  });
});

describe("parsePolicyDocument - refused files", () => {
  it("parsePolicyDocument - refuses a bad date, naming file, line, binding, field and value", () => {
    expect(refusal(withBindings(dutyLive("valid_until", "2027-13-01")))).toBe(
      'policy.yaml line 14, bindings[0] (id duty-live), field valid_until: "2027-13-01" is not a date (expected YYYY-MM-DD or an ISO 8601 date-time with Z or an offset)',
    );
  });

  it("parsePolicyDocument - refuses a date-time without a zone", () => {
    expect(refusal(withBindings(dutyLive("valid_from", "2026-12-04T09:00:00")))).toBe(
      'policy.yaml line 13, bindings[0] (id duty-live), field valid_from: "2026-12-04T09:00:00" is not a date (expected YYYY-MM-DD or an ISO 8601 date-time with Z or an offset)',
    );
  });

  it("parsePolicyDocument - refuses a date YAML reads as a number", () => {
    expect(refusal(withBindings(dutyLive("valid_until", "2027")))).toBe(
      "policy.yaml line 14, bindings[0] (id duty-live), field valid_until: expected a date, got 2027",
    );
  });

  it("parsePolicyDocument - refuses valid_until before valid_from", () => {
    expect(refusal(withBindings(dutyLive("valid_until", "2026-12-01")))).toBe(
      "policy.yaml line 14, bindings[0] (id duty-live), field valid_until: 2026-12-01T00:00:00.000Z is not after valid_from 2026-12-04T00:00:00.000Z",
    );
  });

  it("parsePolicyDocument - refuses valid_until equal to valid_from on a deny", () => {
    const text = withBindings(dutyLive("effect", "deny").map((l) => l.replace("2027-06-01", "2026-12-04")));
    expect(refusal(text)).toBe(
      "policy.yaml line 14, bindings[0] (id duty-live), field valid_until: 2026-12-04T00:00:00.000Z is not after valid_from 2026-12-04T00:00:00.000Z",
    );
  });

  it("parsePolicyDocument - refuses a scope outside the author's subtree (a sibling region)", () => {
    const text = withBindings(["subject: user:x", "role: operator", "scope: kz.ast", "effect: deny"]);
    expect(refusal(text)).toBe('policy.yaml line 10, bindings[0], field scope: "kz.ast" is outside the subtree of kz.ala, the author');
  });

  it("parsePolicyDocument - refuses the author's parent as scope", () => {
    expect(refusal(withBindings(dutyLive("scope", "kz")))).toBe(
      'policy.yaml line 11, bindings[0] (id duty-live), field scope: "kz" is outside the subtree of kz.ala, the author',
    );
  });

  it("parsePolicyDocument - refuses a site id that only starts like the author", () => {
    expect(refusal(withBindings(dutyLive("scope", "kz.alatau")))).toBe(
      'policy.yaml line 11, bindings[0] (id duty-live), field scope: "kz.alatau" is outside the subtree of kz.ala, the author',
    );
  });

  it("parsePolicyDocument - refuses a scope that is not a site id", () => {
    expect(refusal(withBindings(dutyLive("scope", "KZ.Ala")))).toBe(
      'policy.yaml line 11, bindings[0] (id duty-live), field scope: invalid site id "KZ.Ala": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and \'-\', starting with a letter or digit',
    );
  });

  it("parsePolicyDocument - refuses an unknown action in a binding", () => {
    const text = withBindings(dutyLive("role", undefined).concat("action: view_all"));
    expect(refusal(text)).toBe(
      'policy.yaml line 14, bindings[0] (id duty-live), field action: "view_all" is not an action (expected one of view_live, view_archive, export_fragment, ptz_control, manage_cameras, manage_policies, read_audit)',
    );
  });

  it("parsePolicyDocument - refuses a role the document does not define", () => {
    expect(refusal(withBindings(dutyLive("role", "viewer")))).toBe(
      'policy.yaml line 10, bindings[0] (id duty-live), field role: "viewer" is not a role that roles defines',
    );
  });

  it("parsePolicyDocument - refuses both role and action, and neither", () => {
    expect(refusal(withBindings([...DUTY_LIVE, "action: view_live"]))).toBe(
      "policy.yaml line 10, bindings[0] (id duty-live), field role: role and action are both given; give exactly one",
    );
    expect(refusal(withBindings(dutyLive("role", undefined)))).toBe(
      "policy.yaml line 8, bindings[0] (id duty-live), field role: neither role nor action is given; give exactly one",
    );
  });

  it("parsePolicyDocument - refuses a group the document does not define", () => {
    expect(refusal(withBindings(dutyLive("subject", "group:night")))).toBe(
      'policy.yaml line 9, bindings[0] (id duty-live), field subject: "group:night" names a group that groups does not define',
    );
  });

  it.each([
    ["no kind", "a.nurlanov", '"a.nurlanov" is not a subject (expected user:NAME or group:NAME)'],
    ["another kind", "role:operator", '"role:operator" is not a subject (expected user:NAME or group:NAME)'],
    ["a user name with a space", "'user:a nurlanov'", "\"user:a nurlanov\" does not name a user (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit)"],
    ["an empty user name", "'user:'", "\"user:\" does not name a user (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit)"],
  ])("parsePolicyDocument - refuses a subject with %s", (_, subject, message) => {
    expect(refusal(withBindings(dutyLive("subject", subject)))).toBe(`policy.yaml line 9, bindings[0] (id duty-live), field subject: ${message}`);
  });

  it("parsePolicyDocument - refuses a missing subject, scope and effect", () => {
    expect(refusal(withBindings(dutyLive("subject", undefined)))).toBe(
      "policy.yaml line 8, bindings[0] (id duty-live), field subject: missing; expected user:NAME or group:NAME",
    );
    expect(refusal(withBindings(dutyLive("scope", undefined)))).toBe(
      "policy.yaml line 8, bindings[0] (id duty-live), field scope: missing; expected a site id",
    );
    expect(refusal(withBindings(dutyLive("effect", undefined)))).toBe(
      "policy.yaml line 8, bindings[0] (id duty-live), field effect: missing; expected allow or deny",
    );
  });

  it("parsePolicyDocument - refuses an effect other than allow or deny", () => {
    expect(refusal(withBindings(dutyLive("effect", "permit")))).toBe(
      'policy.yaml line 12, bindings[0] (id duty-live), field effect: "permit" is not an effect (expected allow or deny)',
    );
  });

  it("parsePolicyDocument - refuses an unknown camera type, naming the item's line", () => {
    const text = withBindings(dutyLive("camera_types", "\n      - indoor_entry\n      - dome"));
    expect(refusal(text)).toBe(
      'policy.yaml line 17, bindings[0] (id duty-live), field camera_types: "dome" is not a camera type (expected one of outdoor_overview, outdoor_entry, outdoor_vehicle_entry, outdoor_traffic, indoor_entry, indoor_overview, outdoor_ptz_overview, indoor_ptz_overview, outdoor_ptz_road)',
    );
  });

  it.each([
    ["an empty id", "['']", '""'],
    ["an id over 128 characters", `[${"c".repeat(129)}]`, JSON.stringify(`${"c".repeat(60)}…`)],
    ["a control character", '["cam\\u0007"]', '"cam\\u0007"'],
  ])("parsePolicyDocument - refuses a camera with %s", (_, list, shown) => {
    expect(refusal(withBindings(dutyLive("cameras", list)))).toBe(
      `policy.yaml line 15, bindings[0] (id duty-live), field cameras: ${shown} is not a camera id (1 to 128 characters, no control characters or direction overrides)`,
    );
  });

  it("parsePolicyDocument - refuses an empty cameras list, which would read as no cameras but mean all", () => {
    expect(refusal(withBindings(dutyLive("cameras", "[]")))).toBe(
      "policy.yaml line 15, bindings[0] (id duty-live), field cameras: the list is empty, which would mean every camera; list camera ids or leave cameras out",
    );
  });

  it("parsePolicyDocument - refuses cameras that is not a list of strings", () => {
    expect(refusal(withBindings(dutyLive("cameras", "metro-01-cam-001")))).toBe(
      'policy.yaml line 15, bindings[0] (id duty-live), field cameras: expected a list of camera ids, got "metro-01-cam-001"',
    );
    expect(refusal(withBindings(dutyLive("cameras", "[1]")))).toBe(
      "policy.yaml line 15, bindings[0] (id duty-live), field cameras: expected a string, got 1",
    );
  });

  it("parsePolicyDocument - refuses a duplicate binding id, naming the second", () => {
    const text = withBindings(DUTY_LIVE, dutyLive("scope", "kz.ala.metro-01"));
    expect(refusal(text)).toBe(
      'policy.yaml line 15, bindings[1] (id duty-live), field id: "duty-live" is the id of an earlier binding too; ids must be unique',
    );
  });

  it("parsePolicyDocument - refuses a malformed id without repeating it in the binding's name", () => {
    expect(refusal(withBindings(dutyLive("id", "Duty Live")))).toBe(
      "policy.yaml line 8, bindings[0], field id: \"Duty Live\" is not a binding id (1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit)",
    );
  });

  it("parsePolicyDocument - refuses unknown binding keys, naming all of them at the first one's line", () => {
    const text = withBindings([...DUTY_LIVE, "camera: metro-01-cam-001", "note: for the night shift"]);
    expect(refusal(text)).toBe(
      'policy.yaml line 15, bindings[0] (id duty-live): unknown keys "camera", "note" (expected id, subject, role, action, scope, cameras, camera_types, effect, valid_from, valid_until)',
    );
  });

  it("parsePolicyDocument - refuses an unknown top-level key", () => {
    expect(refusal("bindings: []\nrules: []\n")).toBe(
      'policy.yaml line 2: unknown key "rules" (expected roles, groups, bindings, max_policy_age)',
    );
  });

  it("parsePolicyDocument - refuses a file without bindings", () => {
    expect(refusal("roles:\n  a: [view_live]\n")).toBe(
      "policy.yaml line 1, field bindings: missing; give a list of bindings (an empty list [] for none)",
    );
  });

  it("parsePolicyDocument - refuses an empty file and a top level that is not a map", () => {
    expect(refusal("")).toBe("policy.yaml: expected a map with roles, groups and bindings, got null");
    expect(refusal("- a\n")).toBe("policy.yaml line 1: expected a map with roles, groups and bindings, got an array");
  });

  it("parsePolicyDocument - refuses a binding that is not a map", () => {
    expect(refusal("bindings:\n  - user:x\n")).toBe(
      'policy.yaml line 2, bindings[0]: expected a map with subject, scope and effect, got "user:x"',
    );
  });

  it("parsePolicyDocument - refuses an unknown action in a role", () => {
    expect(refusal("roles:\n  operator:\n    - view_live\n    - view_all\nbindings: []\n")).toBe(
      'policy.yaml line 4, roles.operator: "view_all" is not an action (expected one of view_live, view_archive, export_fragment, ptz_control, manage_cameras, manage_policies, read_audit)',
    );
  });

  it("parsePolicyDocument - refuses a role without actions, and one that is not a list", () => {
    expect(refusal("roles:\n  operator: []\nbindings: []\n")).toBe(
      "policy.yaml line 2, roles.operator: the role lists no action; give at least one",
    );
    expect(refusal("roles:\n  operator: view_live\nbindings: []\n")).toBe(
      'policy.yaml line 2, roles.operator: expected a list of actions, got "view_live"',
    );
  });

  it("parsePolicyDocument - refuses bad role and group names", () => {
    expect(refusal("roles:\n  Operator: [view_live]\nbindings: []\n")).toBe(
      "policy.yaml line 2, roles: \"Operator\" is not a role name (1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit)",
    );
    expect(refusal("groups:\n  night.shift: []\nbindings: []\n")).toBe(
      "policy.yaml line 2, groups: \"night.shift\" is not a group name (1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit)",
    );
  });

  it("parsePolicyDocument - refuses a bad user name in a group", () => {
    expect(refusal("groups:\n  duty:\n    - a.nurlanov\n    - -b\nbindings: []\n")).toBe(
      "policy.yaml line 4, groups.duty: \"-b\" is not a user name (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit)",
    );
  });

  it("parsePolicyDocument - refuses more than 10,000 roles, groups or users in a group", () => {
    const roles = Array.from({ length: 10_001 }, (_, index) => `  r${index}: [view_live]`).join("\n");
    expect(refusal(`roles:\n${roles}\nbindings: []\n`)).toBe("policy.yaml line 1, field roles: 10001 roles are more than the limit of 10000");
    const groups = Array.from({ length: 10_001 }, (_, index) => `  g${index}: []`).join("\n");
    expect(refusal(`groups:\n${groups}\nbindings: []\n`)).toBe("policy.yaml line 1, field groups: 10001 groups are more than the limit of 10000");
    const users = Array.from({ length: 10_001 }, (_, index) => `    - u${index}`).join("\n");
    expect(refusal(`groups:\n  duty:\n${users}\nbindings: []\n`)).toBe(
      "policy.yaml line 2, groups.duty: 10001 users are more than the limit of 10000 per group",
    );
  });

  it("parsePolicyDocument - refuses a bad max_policy_age", () => {
    expect(refusal("max_policy_age: 3 days\nbindings: []\n")).toBe(
      'policy.yaml line 1, field max_policy_age: "3 days" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)',
    );
    expect(refusal("max_policy_age: 3600\nbindings: []\n")).toBe(
      "policy.yaml line 1, field max_policy_age: expected a duration like 72h, got 3600",
    );
  });

  it("parsePolicyDocument - refuses a YAML syntax error with its line", () => {
    expect(refusal("bindings:\n  - subject: user:x\n   scope: kz\n")).toMatch(/^policy\.yaml line 3: /);
  });

  it("parsePolicyDocument - refuses duplicate keys in YAML and JSON", () => {
    expect(refusal("bindings: []\nbindings: []\n")).toBe('policy.yaml line 2: duplicate key "bindings"');
    expect(refusal('{\n  "bindings": [],\n  "bindings": []\n}\n', {}, "policy.json")).toBe('policy.json line 3: duplicate key "bindings"');
  });

  it("parsePolicyDocument - refuses a key that is a list", () => {
    expect(refusal("bindings: []\n? [a, b]\n: x\n")).toBe("policy.yaml line 2: a key is a list, a map or empty; keys must be plain names");
  });

  it("parsePolicyDocument - checks duplicate keys in linear time: a 2 MB map is refused by its limit, not a timeout", () => {
    const groups = Array.from({ length: 150_000 }, (_, index) => `  g${index}: []`).join("\n");
    expect(refusal(`groups:\n${groups}\nbindings: []\n`)).toBe("policy.yaml line 1, field groups: 150000 groups are more than the limit of 10000");
  });

  it("parsePolicyDocument - refuses a .json file that is YAML but not JSON", () => {
    expect(refusal('{\n  "bindings": [],\n}\n', {}, "policy.json")).toBe(
      "policy.json line 3: not JSON: Expected double-quoted property name in JSON at position 20",
    );
    // V8 gives no position for a first character that cannot start JSON.
    expect(refusal("bindings: []\n", {}, "Policy.JSON")).toMatch(/^Policy\.JSON: not JSON: Unexpected token 'b'/);
  });

  it("parsePolicyDocument - refuses a YAML tag", () => {
    expect(refusal("bindings: !custom []\n")).toMatch(/^policy\.yaml line 1: /);
  });

  it("parsePolicyDocument - refuses a file that is not UTF-8", () => {
    const bytes = new Uint8Array([...encode("bindings: []\n# caf"), 0xe9, ...encode("\n")]);
    expect(refusal(bytes)).toBe("policy.yaml line 2: not UTF-8: invalid byte sequence at offset 18 (0xE9); save the file as UTF-8");
  });

  it("parsePolicyDocument - refuses a file over MAX_POLICY_BYTES (4 MiB)", () => {
    expect(MAX_POLICY_BYTES).toBe(4_194_304);
    const bytes = new Uint8Array(MAX_POLICY_BYTES + 1).fill(0x20);
    expect(refusal(bytes)).toBe("policy.yaml: 4194305 bytes is more than the limit of 4194304 bytes (4 MiB)");
  });

  it("parsePolicyDocument - refuses a file that expands too many aliases", () => {
    const text = "roles:\n  a: &actions [view_live]\n" + Array.from({ length: 200 }, (_, index) => `  r${index}: *actions`).join("\n") + "\nbindings: []\n";
    expect(refusal(text)).toBe("policy.yaml: Excessive alias count indicates a resource exhaustion attack; expand the aliases or use fewer");
  });

  it("parsePolicyDocument - reports the first problem in file order across bindings", () => {
    const text = withBindings(dutyLive("effect", "permit"), dutyLive("scope", "kz.ast"));
    expect(refusal(text)).toBe('policy.yaml line 12, bindings[0] (id duty-live), field effect: "permit" is not an effect (expected allow or deny)');
  });
});
