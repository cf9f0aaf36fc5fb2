import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, ok, waitFor, type TestNode } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/inventory/", import.meta.url).pathname;
const METRO_CAMERA = "metro-01-cam-001";

interface Decision {
  decision: "allow" | "deny";
  binding: string | null;
  origin: string | null;
  version: number | null;
  reason: string;
  policyAgeMs: number;
}

interface PolicyStatusJson {
  current: { author: string; version: number }[];
  nodes: { site: string; versions: { author: string; version: number }[]; appliedAt: string | null; behind: boolean }[];
}

// The national node's rules. Version 1 grants the akimat operators live and archive view
// in the Almaty region and forbids sidorov PTZ anywhere.
const KZ_V1 = `
roles:
  operator: [view_live, view_archive]
groups:
  akimat-ops: [ivanov, petrov]
bindings:
  - id: ops-live
    subject: group:akimat-ops
    role: operator
    scope: kz.ala
    effect: allow
    valid_from: 2026-12-01
    valid_until: 2027-06-01
  - id: no-ptz-sidorov
    subject: user:sidorov
    action: ptz_control
    scope: kz
    effect: deny
`;

// Version 2 revokes ivanov's view of one camera with a deny.
const KZ_V2 = `${KZ_V1}
  - id: ivanov-not-entrance
    subject: user:ivanov
    action: view_live
    scope: kz.ala.metro-01
    cameras: [${METRO_CAMERA}]
    effect: deny
`;

// Version 3 removes the operators' grant altogether.
const KZ_V3 = KZ_V1.replace(/  - id: ops-live[\s\S]*?valid_until: 2027-06-01\n/, "");

// The region's own rules: sidorov may steer the metro's cameras, which the national deny overrides.
const ALA_V1 = `
roles:
  ptz: [ptz_control, view_live]
bindings:
  - id: metro-ptz
    subject: user:sidorov
    role: ptz
    scope: kz.ala.metro-01
    effect: allow
    valid_until: 2027-06-01
`;

// Policies flow down kz ← kz.ala ← (proxy) ← kz.ala.metro-01; kz.ast is the sibling region.
describe("access policies through a three-level tree (R-6.3, R-21…27)", () => {
  let kz: TestNode;
  let ala: TestNode;
  let ast: TestNode;
  let metro: TestNode;
  let proxy: TcpProxy;
  let files: string;

  const policyFile = async (name: string, text: string) => {
    const file = join(files, name);
    await writeFile(file, text);
    return file;
  };
  const apply = async (node: TestNode, name: string, text: string) => node.cli(["policy", "apply", await policyFile(name, text)]);
  const authorize = async (node: TestNode, user: string, action: string, extra: string[] = []): Promise<Decision> => {
    const result = await node.cli(["authorize", "--user", user, "--action", action, "--camera", METRO_CAMERA, "--site", "kz.ala.metro-01", "--json", ...extra]);
    if (result.code !== 0 && result.code !== 1) throw new Error(`authorize exited ${result.code}: ${result.stderr}`);
    const decision = JSON.parse(result.stdout) as Decision;
    expect(result.code).toBe(decision.decision === "allow" ? 0 : 1);
    return decision;
  };
  const policyStatus = async (node: TestNode) => JSON.parse(ok(await node.cli(["policy", "status", "--json"]))) as PolicyStatusJson;
  const versionAt = async (node: TestNode, author: string) =>
    (await node.status()).policy?.versions.find((v) => v.author === author)?.version ?? 0;

  beforeAll(async () => {
    files = await makeTempDir("vmtree-policy-files-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    ast = await joinChild(kz, "kz.ast");
    await ast.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    const [host, port] = ala.address.split(":");
    proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    await metro.serve(["--parent", proxy.address]);
    await metro.import(join(EXAMPLES, "kz.ala.metro-01.csv"));
  });

  afterAll(async () => {
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  it("policy flow - a root's set reaches every site and each level adds its own; deny overrides across levels", async () => {
    const applied = ok(await apply(kz, "kz-v1.yaml", KZ_V1));
    expect(applied).toBe(`applied ${join(files, "kz-v1.yaml")} as kz version 1: 4 changes\n  + binding no-ptz-sidorov\n  + binding ops-live\n  + group akimat-ops\n  + role operator\n`);
    ok(await apply(ala, "ala-v1.yaml", ALA_V1));
    await waitFor(() => versionAt(metro, "kz.ala"), (v) => v === 1, 10_000, "kz.ala v1 at the metro");
    expect(await versionAt(metro, "kz")).toBe(1);

    expect(await authorize(metro, "ivanov", "view_live")).toEqual({
      decision: "allow", binding: "ops-live", origin: "kz", version: 1, reason: expect.any(String), policyAgeMs: 0,
    });
    // A descendant may grant what no ancestor granted…
    expect(await authorize(metro, "sidorov", "view_live")).toMatchObject({ decision: "allow", binding: "metro-ptz", origin: "kz.ala", version: 1 });
    // …but not what an ancestor denied.
    expect(await authorize(metro, "sidorov", "ptz_control")).toMatchObject({ decision: "deny", binding: "no-ptz-sidorov", origin: "kz", version: 1 });
    // Default deny: no binding grants export.
    expect(await authorize(metro, "ivanov", "export_fragment")).toMatchObject({ decision: "deny", binding: null, origin: null, version: null });
    // The region decides the same from what it holds; the sibling region holds no grant for the metro's operators.
    expect(await authorize(ala, "ivanov", "view_live")).toMatchObject({ decision: "allow", binding: "ops-live", origin: "kz", version: 1 });
    expect(await authorize(ala, "sidorov", "view_live")).toMatchObject({ decision: "allow", binding: "metro-ptz", origin: "kz.ala", version: 1 });
  });

  it("policy decisions - expired grants deny, and an unknown camera is denied", async () => {
    const expired = await authorize(metro, "ivanov", "view_live", ["--at", "2027-06-01T00:00:00Z"]);
    expect(expired.decision).toBe("deny");
    expect(expired.reason).toContain("expired");
    const early = await authorize(metro, "ivanov", "view_live", ["--at", "2026-11-30T23:59:59Z"]);
    expect(early.decision).toBe("deny");
    const unknown = JSON.parse((await metro.cli(["authorize", "--user", "ivanov", "--action", "view_live", "--camera", "no-such-camera", "--json"])).stdout) as Decision;
    expect(unknown).toMatchObject({ decision: "deny", binding: null, reason: 'camera "no-such-camera" is not in the inventory of kz.ala.metro-01' });
    const badAction = await metro.cli(["authorize", "--user", "ivanov", "--action", "fly", "--camera", METRO_CAMERA]);
    expect(badAction.code).toBe(2);
    expect(badAction.stderr).toContain('--action "fly" is not an action');
    const badUser = await metro.cli(["authorize", "--user", "../etc", "--action", "view_live", "--camera", METRO_CAMERA]);
    expect(badUser.code).toBe(2);
    expect(badUser.stderr).toContain('expected a user name like ivanov, got "../etc"');
  });

  it("policy decisions - every decision is audited with who asked, the user, and the deciding binding", async () => {
    const entries = await metro.auditList(["--action", "policy.authorize"]);
    const ptz = entries.find((e) => (e.details as { user?: string; action?: string }).user === "sidorov" && (e.details as { action?: string }).action === "ptz_control");
    expect(ptz).toMatchObject({
      action: "policy.authorize",
      target: `kz.ala.metro-01/${METRO_CAMERA}`,
      result: "refused",
      details: { user: "sidorov", action: "ptz_control", decision: "deny", binding: "no-ptz-sidorov", origin: "kz", version: 1 },
    });
  });

  it("policy scope - a region cannot author for a sibling region, and a refused file changes nothing", async () => {
    const forSibling = ALA_V1.replace("scope: kz.ala.metro-01", "scope: kz.ast");
    const refused = await apply(ala, "ala-bad.yaml", forSibling);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("ala-bad.yaml line 8, bindings[0] (id metro-ptz), field scope");
    expect(refused.stderr).toContain("kz.ast");
    expect(await versionAt(ala, "kz.ala")).toBe(1);
    const overTerm = await apply(ala, "ala-long.yaml", ALA_V1.replace("valid_until: 2027-06-01", "valid_until: 2028-06-01"));
    expect(overTerm.code).toBe(1);
    expect(overTerm.stderr).toContain("field valid_until");
    expect(overTerm.stderr).toContain("12 months");
    expect(await versionAt(ala, "kz.ala")).toBe(1);
    // 60 aliases of one list of 8,000 camera ids: a 100 KB file that would be 24 MB on the link.
    const ids = Array.from({ length: 8_000 }, (_, i) => `cam-${String(i).padStart(5, "0")}`).join(", ");
    const aliases = Array.from({ length: 60 }, (_, i) =>
      `  - id: b${i}\n    subject: user:sidorov\n    action: view_live\n    scope: kz.ala.metro-01\n    cameras: ${i === 0 ? `&ids [${ids}]` : "*ids"}\n    effect: deny\n`,
    ).join("");
    const amplified = await apply(ala, "ala-amp.yaml", `bindings:\n${aliases}`);
    expect(amplified.code).toBe(1);
    expect(amplified.stderr).toMatch(/ala-amp.yaml: the policy set would take \d+ bytes on the link, more than the 4128768 one link message carries/);
    expect(await versionAt(ala, "kz.ala")).toBe(1);
  });

  it("policy propagation - a deny added at the root reaches the site within seconds, and the root sees it applied", async () => {
    const started = Date.now();
    ok(await apply(kz, "kz-v2.yaml", KZ_V2));
    await waitFor(() => authorize(metro, "ivanov", "view_live"), (d) => d.decision === "deny", 5_000, "the revocation at the metro");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await authorize(metro, "ivanov", "view_live")).toMatchObject({ decision: "deny", binding: "ivanov-not-entrance", origin: "kz", version: 2 });
    const status = await waitFor(() => policyStatus(kz), (s) => s.nodes.every((n) => !n.behind), 5_000, "every node at kz v2");
    expect(status.current).toEqual([{ author: "kz", version: 2 }]);
    expect(status.nodes.map((n) => [n.site, n.versions])).toEqual([
      ["kz", [{ author: "kz", version: 2 }]],
      ["kz.ala", [{ author: "kz", version: 2 }, { author: "kz.ala", version: 1 }]],
      ["kz.ala.metro-01", [{ author: "kz", version: 2 }, { author: "kz.ala", version: 1 }]],
      ["kz.ast", [{ author: "kz", version: 2 }]],
    ]);
  });

  it("policy offline - a cut-off site decides from its last policies, shows their age, and applies a revocation first on reconnect", async () => {
    proxy.pause();
    await waitFor(() => metro.status(), (s) => s.parent?.state === "disconnected" && (s.policy?.ageMs ?? 0) > 0, 20_000, "the metro offline");
    ok(await apply(kz, "kz-v3.yaml", KZ_V3));
    // Still the last policy received: petrov keeps his grant while the site cannot hear of its removal.
    expect(await authorize(metro, "petrov", "view_live")).toMatchObject({ decision: "allow", binding: "ops-live", origin: "kz", version: 2 });
    const behind = await policyStatus(kz);
    expect(behind.nodes.find((n) => n.site === "kz.ala.metro-01")?.behind).toBe(true);

    proxy.resume();
    await waitFor(() => authorize(metro, "petrov", "view_live"), (d) => d.decision === "deny", 20_000, "the removal at the metro");
    expect(await authorize(metro, "petrov", "view_live")).toMatchObject({ decision: "deny", binding: null });
    await waitFor(() => policyStatus(kz), (s) => s.nodes.every((n) => !n.behind), 5_000, "every node at kz v3");
    // The new version was stored before this session's link.connect: before inventory and audit resumed.
    const log = await metro.auditList();
    const received = log.findIndex((e) => e.action === "policy.receive" && (e.details as { version?: number }).version === 3);
    const reconnected = log.findLastIndex((e) => e.action === "link.connect");
    expect(received).toBeGreaterThan(-1);
    expect(received).toBeLessThan(reconnected);
  });

  it("policy max age - past max_policy_age an offline site denies everything, and decides again once back", async () => {
    const strict = KZ_V1.replace("roles:", "max_policy_age: 2s\nroles:");
    ok(await apply(kz, "kz-v4.yaml", strict));
    await waitFor(() => versionAt(metro, "kz"), (v) => v === 4, 10_000, "kz v4 at the metro");
    expect(await authorize(metro, "petrov", "view_live")).toMatchObject({ decision: "allow", binding: "ops-live", version: 4 });
    proxy.pause();
    const stale = await waitFor(() => metro.status(), (s) => s.policy?.stale === true, 20_000, "stale policies at the metro");
    expect(stale.policy?.maxAgeMs).toBe(2_000);
    const denied = await authorize(metro, "petrov", "view_live");
    expect(denied).toMatchObject({ decision: "deny", binding: null });
    expect(denied.reason).toContain("past max_policy_age 2s");
    proxy.resume();
    await waitFor(() => authorize(metro, "petrov", "view_live"), (d) => d.decision === "allow", 20_000, "decisions again at the metro");
  });

  it("policy max age - a site connected to a region that lost the root ages with the region, and denies past the limit", async () => {
    expect((await metro.status()).policy).toMatchObject({ ageMs: 0, stale: false, maxAgeMs: 2_000 });
    await kz.stop();
    const stale = await waitFor(() => metro.status(), (s) => s.policy?.stale === true, 20_000, "stale policies at the metro behind kz.ala");
    expect(stale.parent?.state).toBe("connected");
    expect((await ala.status()).policy?.stale).toBe(true);
    const denied = await authorize(metro, "petrov", "view_live");
    expect(denied).toMatchObject({ decision: "deny", binding: null });
    expect(denied.reason).toContain("past max_policy_age 2s");
    await kz.serve();
    await waitFor(() => metro.status(), (s) => s.policy?.stale === false && s.policy.ageMs === 0, 40_000, "current policies at the metro again");
    expect(await authorize(metro, "petrov", "view_live")).toMatchObject({ decision: "allow", binding: "ops-live" });
  });

  it("policy flow - a set of 15,000 bindings (2 MB, sent in a message of its own) reaches the site", async () => {
    const bindings = Array.from({ length: 15_000 }, (_, i) =>
      `  - id: grant-${i}\n    subject: user:user-${i}\n    action: view_archive\n    scope: kz.ala.metro-01\n    cameras: [${METRO_CAMERA}]\n    effect: allow\n    valid_until: 2027-06-01\n`,
    ).join("");
    const file = await policyFile("kz-large.yaml", `${KZ_V1}${bindings}`);
    ok(await kz.cli(["policy", "apply", file]));
    const version = (await kz.status()).policy!.versions.find((v) => v.author === "kz")!.version;
    await waitFor(() => versionAt(metro, "kz"), (v) => v === version, 20_000, "the large set at the metro");
    expect(await authorize(metro, "user-14999", "view_archive")).toMatchObject({ decision: "allow", binding: "grant-14999", origin: "kz", version });
  });
});
