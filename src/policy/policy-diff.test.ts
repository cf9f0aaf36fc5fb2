import { describe, expect, it } from "vitest";
import type { PolicyBinding, PolicyDocument } from "../gen/vmtree/v1/policy.ts";
import { diffPolicies } from "./policy-diff.ts";

function binding(id: string, fields: Partial<PolicyBinding> = {}): PolicyBinding {
  return {
    id,
    subject: "user:x",
    role: "",
    action: "view_live",
    scope: "kz",
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

const BEFORE: PolicyDocument = {
  roles: [
    { name: "auditor", actions: ["read_audit"] },
    { name: "operator", actions: ["view_live"] },
  ],
  groups: [{ name: "duty", users: ["a"] }],
  bindings: [binding("b1"), binding("b2"), binding("bindings[2]")],
  max_policy_age_ms: 0,
};

describe("diffPolicies", () => {
  it("diffPolicies - everything is added when nothing was in force", () => {
    expect(diffPolicies(undefined, { ...BEFORE, max_policy_age_ms: 60_000 })).toEqual([
      { kind: "binding", name: "b1", change: "added" },
      { kind: "binding", name: "b2", change: "added" },
      { kind: "binding", name: "bindings[2]", change: "added" },
      { kind: "group", name: "duty", change: "added" },
      { kind: "role", name: "auditor", change: "added" },
      { kind: "role", name: "operator", change: "added" },
      { kind: "setting", name: "max_policy_age", change: "added" },
    ]);
  });

  it("diffPolicies - an equal document has no changes", () => {
    expect(diffPolicies(BEFORE, structuredClone(BEFORE))).toEqual([]);
  });

  it("diffPolicies - reports added, removed and changed items sorted by kind, then name", () => {
    const next: PolicyDocument = {
      roles: [
        { name: "operator", actions: ["view_live", "ptz_control"] },
        { name: "investigator", actions: ["export_fragment"] },
      ],
      groups: [{ name: "duty", users: ["a"] }],
      bindings: [binding("b2", { effect: "allow", valid_until_ms: 5 }), binding("b0"), binding("bindings[2]", { valid_until_implied: true })],
      max_policy_age_ms: 0,
    };
    expect(diffPolicies(BEFORE, next)).toEqual([
      { kind: "binding", name: "b0", change: "added" },
      { kind: "binding", name: "b1", change: "removed" },
      { kind: "binding", name: "b2", change: "changed" },
      { kind: "binding", name: "bindings[2]", change: "changed" },
      { kind: "role", name: "auditor", change: "removed" },
      { kind: "role", name: "investigator", change: "added" },
      { kind: "role", name: "operator", change: "changed" },
    ]);
  });

  it("diffPolicies - a group's users and max_policy_age changes and removal", () => {
    const on = { ...BEFORE, max_policy_age_ms: 60_000 };
    expect(diffPolicies(on, { ...on, groups: [{ name: "duty", users: ["a", "b"] }], max_policy_age_ms: 120_000 })).toEqual([
      { kind: "group", name: "duty", change: "changed" },
      { kind: "setting", name: "max_policy_age", change: "changed" },
    ]);
    expect(diffPolicies(on, { ...on, groups: [], max_policy_age_ms: 0 })).toEqual([
      { kind: "group", name: "duty", change: "removed" },
      { kind: "setting", name: "max_policy_age", change: "removed" },
    ]);
  });

  it("diffPolicies - a binding moved to another position keeps its id and is unchanged", () => {
    expect(diffPolicies(BEFORE, { ...BEFORE, bindings: [binding("b2"), binding("b1"), binding("bindings[2]")] })).toEqual([]);
  });
});
