import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import type { PolicyBinding, PolicyDocument, PolicySet } from "../gen/vmtree/v1/policy.ts";
import { PolicyEngine, type DecisionRequest } from "./policy-engine.ts";

const AT = Date.parse("2027-01-15T10:00:00Z");
const YEAR_END = Date.parse("2027-12-01T00:00:00Z");

function allow(id: string, fields: Partial<PolicyBinding> = {}): PolicyBinding {
  return {
    id,
    subject: "user:a.nurlanov",
    role: "",
    action: "view_live",
    scope: "kz",
    cameras: [],
    camera_types: [],
    effect: "allow",
    valid_from_ms: 0,
    valid_until_ms: YEAR_END,
    valid_until_implied: false,
    valid_from_implied: false,
    ...fields,
  };
}

function deny(id: string, fields: Partial<PolicyBinding> = {}): PolicyBinding {
  return allow(id, { effect: "deny", valid_until_ms: 0, ...fields });
}

function set(author: string, version: number, bindings: PolicyBinding[], fields: Partial<PolicyDocument> = {}): PolicySet {
  const document: PolicyDocument = {
    roles: [
      { name: "operator", actions: ["view_live", "ptz_control"] },
      { name: "investigator", actions: ["view_archive", "export_fragment"] },
    ],
    groups: [
      { name: "duty", users: ["a.nurlanov", "b.sadykova"] },
      { name: "night", users: ["b.sadykova"] },
    ],
    bindings,
    max_policy_age_ms: 0,
    ...fields,
  };
  return { author, version, created_ms: 0, created_by: "user:admin", document, sha256: "", signature: Buffer.alloc(0), signer_chain_pem: "" };
}

/** A request by a.nurlanov to watch live camera metro-01-cam-001 (outdoor_overview) of kz.ala.metro-01. */
function request(fields: Partial<DecisionRequest> = {}): DecisionRequest {
  return {
    user: "a.nurlanov",
    action: "view_live",
    site: "kz.ala.metro-01",
    camera: "metro-01-cam-001",
    cameraType: "outdoor_overview",
    atMs: AT,
    ...fields,
  };
}

const DEFAULT_DENY = {
  decision: "deny",
  binding: "",
  origin: "",
  version: 0,
  reason: 'no binding allows view_live for user "a.nurlanov" on camera "metro-01-cam-001" at kz.ala.metro-01',
};

describe("PolicyEngine - deny overrides across levels (R-6.3)", () => {
  const root = set("kz", 7, [deny("no-live-metro", { scope: "kz.ala.metro-01" })]);
  const region = set("kz.ala", 3, [allow("ala-live", { scope: "kz.ala" })]);
  const site = set("kz.ala.metro-01", 2, [allow("metro-live", { scope: "kz.ala.metro-01" })]);

  it("PolicyEngine - a root deny wins over a region allow and a site allow", () => {
    expect(new PolicyEngine([root, region, site]).decide(request())).toEqual({
      decision: "deny",
      binding: "no-live-metro",
      origin: "kz",
      version: 7,
      reason: "denied by binding no-live-metro of kz version 7",
    });
  });

  it("PolicyEngine - a site's deny wins over the region's allow", () => {
    const siteDeny = set("kz.ala.metro-01", 2, [deny("site-no-live", { scope: "kz.ala.metro-01" })]);
    expect(new PolicyEngine([region, siteDeny]).decide(request())).toEqual({
      decision: "deny",
      binding: "site-no-live",
      origin: "kz.ala.metro-01",
      version: 2,
      reason: "denied by binding site-no-live of kz.ala.metro-01 version 2",
    });
  });

  it("PolicyEngine - when the root and a site both deny, the root's deny is reported", () => {
    const siteDeny = set("kz.ala.metro-01", 2, [deny("site-no-live", { scope: "kz.ala.metro-01" })]);
    expect(new PolicyEngine([root, region, siteDeny]).decide(request()).binding).toBe("no-live-metro");
  });

  it("PolicyEngine - the first allow root first decides when nothing denies", () => {
    expect(new PolicyEngine([region, site]).decide(request())).toEqual({
      decision: "allow",
      binding: "ala-live",
      origin: "kz.ala",
      version: 3,
      reason: "allowed by binding ala-live of kz.ala version 3",
    });
  });

  it("PolicyEngine - a descendant's allow grants what no ancestor granted", () => {
    const bare = set("kz", 7, []);
    expect(new PolicyEngine([bare, set("kz.ala", 3, []), site]).decide(request())).toEqual({
      decision: "allow",
      binding: "metro-live",
      origin: "kz.ala.metro-01",
      version: 2,
      reason: "allowed by binding metro-live of kz.ala.metro-01 version 2",
    });
  });

  it("PolicyEngine - a root deny elsewhere in the tree leaves the allow alone", () => {
    const elsewhere = set("kz", 7, [deny("no-live-ast", { scope: "kz.ast" })]);
    expect(new PolicyEngine([elsewhere, region]).decide(request()).decision).toBe("allow");
  });

  it("PolicyEngine - the first matching binding in file order decides within a set", () => {
    const two = set("kz", 1, [allow("first", { scope: "kz.ala" }), allow("second", { scope: "kz.ala.metro-01" })]);
    expect(new PolicyEngine([two]).decide(request()).binding).toBe("first");
  });
});

describe("PolicyEngine - what a binding covers", () => {
  it("PolicyEngine - default deny with no sets and with no matching binding", () => {
    expect(new PolicyEngine([]).decide(request())).toEqual(DEFAULT_DENY);
    expect(new PolicyEngine([set("kz", 1, [allow("other-user", { subject: "user:c.omarov" })])]).decide(request())).toEqual(DEFAULT_DENY);
  });

  it("PolicyEngine - a binding scoped kz.ala covers kz.ala.metro-01 but not kz.ast.x or kz.alatau", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("ala", { scope: "kz.ala" })])]);
    expect(engine.decide(request()).decision).toBe("allow");
    expect(engine.decide(request({ site: "kz.ala" })).decision).toBe("allow");
    expect(engine.decide(request({ site: "kz.ast.x" }))).toEqual({ ...DEFAULT_DENY, reason: DEFAULT_DENY.reason.replace("kz.ala.metro-01", "kz.ast.x") });
    expect(engine.decide(request({ site: "kz.alatau" })).decision).toBe("deny");
    expect(engine.decide(request({ site: "kz" })).decision).toBe("deny");
  });

  it("PolicyEngine - a group binding covers its members only", () => {
    const engine = new PolicyEngine([set("kz", 4, [allow("night-live", { subject: "group:night" })])]);
    expect(engine.decide(request({ user: "b.sadykova" }))).toEqual({
      decision: "allow",
      binding: "night-live",
      origin: "kz",
      version: 4,
      reason: "allowed by binding night-live of kz version 4",
    });
    expect(engine.decide(request())).toEqual(DEFAULT_DENY);
  });

  it("PolicyEngine - a group deny wins over the member's own allow", () => {
    const engine = new PolicyEngine([set("kz", 4, [allow("own", { subject: "user:b.sadykova" }), deny("night-no-live", { subject: "group:night" })])]);
    expect(engine.decide(request({ user: "b.sadykova" })).binding).toBe("night-no-live");
  });

  it("PolicyEngine - a group's membership counts only in the set that defines it", () => {
    const root = set("kz", 1, [], { groups: [{ name: "night", users: ["a.nurlanov"] }] });
    const region = set("kz.ala", 1, [allow("night-live", { subject: "group:night" })], { groups: [{ name: "night", users: ["b.sadykova"] }] });
    expect(new PolicyEngine([root, region]).decide(request()).decision).toBe("deny");
  });

  it("PolicyEngine - a role grants each of its actions and nothing else", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("op", { action: "", role: "operator" })])]);
    expect(engine.decide(request()).decision).toBe("allow");
    expect(engine.decide(request({ action: "ptz_control" })).decision).toBe("allow");
    expect(engine.decide(request({ action: "export_fragment" })).decision).toBe("deny");
  });

  it("PolicyEngine - a single action binding grants only that action", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("live")])]);
    expect(engine.decide(request({ action: "view_archive" })).decision).toBe("deny");
  });

  it("PolicyEngine - cameras limits a binding to the listed ids", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("cam-2", { cameras: ["metro-01-cam-002"] })])]);
    expect(engine.decide(request()).decision).toBe("deny");
    expect(engine.decide(request({ camera: "metro-01-cam-002" })).binding).toBe("cam-2");
  });

  it("PolicyEngine - camera_types limits a binding to the listed types", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("ptz", { camera_types: ["outdoor_ptz_overview", "indoor_ptz_overview"] })])]);
    expect(engine.decide(request()).decision).toBe("deny");
    expect(engine.decide(request({ cameraType: "indoor_ptz_overview" })).binding).toBe("ptz");
  });

  it("PolicyEngine - with both lists, a camera listed by id or of a listed type is covered", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("both", { cameras: ["metro-01-cam-009"], camera_types: ["indoor_entry"] })])]);
    expect(engine.decide(request({ camera: "metro-01-cam-009" })).decision).toBe("allow");
    expect(engine.decide(request({ cameraType: "indoor_entry" })).decision).toBe("allow");
    expect(engine.decide(request()).decision).toBe("deny");
  });

  it("PolicyEngine - a deny limited to camera types leaves other cameras allowed", () => {
    const engine = new PolicyEngine([set("kz", 1, [deny("no-entry", { camera_types: ["indoor_entry"] }), allow("all")])]);
    expect(engine.decide(request()).binding).toBe("all");
    expect(engine.decide(request({ cameraType: "indoor_entry" })).binding).toBe("no-entry");
  });

  it("PolicyEngine - a camera missing from the inventory is denied without a binding", () => {
    const engine = new PolicyEngine([set("kz", 1, [allow("all")])]);
    expect(engine.decide(request({ camera: "metro-01-cam-404", cameraType: undefined }))).toEqual({
      decision: "deny",
      binding: "",
      origin: "",
      version: 0,
      reason: 'camera "metro-01-cam-404" is not in the inventory of kz.ala.metro-01',
    });
  });

  it("PolicyEngine - an unknown action throws invalid_argument naming it and the known actions", () => {
    const engine = new PolicyEngine([]);
    expect(() => engine.decide(request({ action: "view_all" }))).toThrow(
      new VmtreeError(
        "invalid_argument",
        '"view_all" is not an action (expected one of view_live, view_archive, export_fragment, ptz_control, manage_cameras, manage_policies, read_audit)',
      ),
    );
    const error = (() => {
      try {
        engine.decide(request({ action: "" }));
      } catch (reason) {
        return reason;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(VmtreeError);
    expect((error as VmtreeError).code).toBe("invalid_argument");
  });

  it("PolicyEngine - a set without a document holds no bindings", () => {
    expect(new PolicyEngine([{ ...set("kz", 1, []), document: undefined }]).decide(request())).toEqual(DEFAULT_DENY);
  });
});

describe("PolicyEngine - time (R-22)", () => {
  const from = Date.parse("2027-01-01T00:00:00Z");
  const until = Date.parse("2027-07-01T00:00:00Z");
  const dated = set("kz.ala", 5, [allow("dated", { valid_from_ms: from, valid_until_ms: until })]);

  it("PolicyEngine - a grant applies from valid_from up to, not including, valid_until", () => {
    const engine = new PolicyEngine([dated]);
    expect(engine.decide(request({ atMs: from })).decision).toBe("allow");
    expect(engine.decide(request({ atMs: until - 1 })).decision).toBe("allow");
  });

  it("PolicyEngine - R-22 an expired grant denies, naming the grant and when it expired", () => {
    expect(new PolicyEngine([dated]).decide(request({ atMs: until }))).toEqual({
      ...DEFAULT_DENY,
      reason: `${DEFAULT_DENY.reason}: grant dated of kz.ala version 5 expired at 2027-07-01T00:00:00.000Z`,
    });
  });

  it("PolicyEngine - a grant not yet valid denies, naming when it starts", () => {
    expect(new PolicyEngine([dated]).decide(request({ atMs: from - 1 }))).toEqual({
      ...DEFAULT_DENY,
      reason: `${DEFAULT_DENY.reason}: grant dated of kz.ala version 5 is valid only from 2027-01-01T00:00:00.000Z`,
    });
  });

  it("PolicyEngine - an expired grant does not hide a valid one", () => {
    const engine = new PolicyEngine([dated, set("kz.ala.metro-01", 1, [allow("current")])]);
    expect(engine.decide(request({ atMs: until })).binding).toBe("current");
  });

  it("PolicyEngine - an expired deny no longer denies; an unbounded deny always does", () => {
    const expired = set("kz", 2, [deny("old-deny", { valid_until_ms: from })]);
    const unbounded = set("kz", 2, [deny("deny-forever")]);
    const grant = set("kz.ala", 1, [allow("live")]);
    expect(new PolicyEngine([expired, grant]).decide(request()).binding).toBe("live");
    expect(new PolicyEngine([unbounded, grant]).decide(request({ atMs: Date.parse("2040-01-01T00:00:00Z") })).binding).toBe("deny-forever");
  });

  it("PolicyEngine - a deny not yet valid does not deny", () => {
    const future = set("kz", 2, [deny("future-deny", { valid_from_ms: Date.parse("2027-06-01T00:00:00Z") })]);
    expect(new PolicyEngine([future, set("kz.ala", 1, [allow("live")])]).decide(request()).binding).toBe("live");
  });
});

describe("PolicyEngine - indexes", () => {
  it("PolicyEngine - decides among 10,000 bindings of other users by looking only at the user's own", () => {
    const others = Array.from({ length: 10_000 }, (_, index) => allow(`u${index}`, { subject: `user:u${index}` }));
    const engine = new PolicyEngine([set("kz", 1, [...others, allow("mine")])]);
    expect(engine.decide(request()).binding).toBe("mine");
    expect(engine.decide(request({ user: "u9999" })).binding).toBe("u9999");
    expect(engine.decide(request({ user: "nobody" })).decision).toBe("deny");
  });
});
