import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, removeTempDirs, runCli } from "./support/processes.ts";
import { initRoot, joinChild, ok, TestNode, waitFor } from "./support/tree.ts";

// kz ← kz.ala ← kz.ala.metro-01, all serving; kz revokes the site two levels down.
describe("revocation (R-6.5)", () => {
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;
  let tokenBefore: string;

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    await metro.serve();
    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected", 20_000, "the metro connected");
    tokenBefore = await ala.invite("kz.ala.metro-01");
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("revoke - a revocation at the root reaches the site's parent, which closes the open link within 5 s", async () => {
    const started = Date.now();
    expect(ok(await kz.cli(["revoke", "--site", "kz.ala.metro-01", "--reason", "stolen recorder"]))).toMatch(
      /^revoked kz\.ala\.metro-01 and its subtree at \S+; it can join again only with a new invitation\n$/,
    );
    const region = await waitFor(() => ala.status(), (s) => s.children.find((c) => c.site === "kz.ala.metro-01")?.state === "disconnected", 5_000, "the metro's link closed at kz.ala");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(region.children.map((c) => [c.site, c.state])).toEqual([["kz.ala.metro-01", "disconnected"]]);
    const site = await waitFor(() => metro.status(), (s) => (s.parent?.lastError ?? "").includes("revoked"), 20_000, "the metro refused");
    expect(site.parent?.lastError).toContain("kz.ala.metro-01 was revoked by kz at");
    expect(site.parent?.state).toBe("disconnected");
    const [revocation] = await kz.auditList(["--action", "enrolment.revoke"]);
    expect(revocation).toMatchObject({ origin: "kz", actor: expect.stringMatching(/^user:/), target: "kz.ala.metro-01", result: "ok", details: { reason: "stolen recorder" } });
    const received = await ala.auditList(["--action", "enrolment.revocation", "--site", "kz.ala"]);
    expect(received.map((e) => [e.actor, e.target, (e.details as { revoked_by?: string }).revoked_by])).toEqual([["site:kz", "kz.ala.metro-01", "kz"]]);
    const refused = await waitFor(() => ala.auditList(["--action", "call.refused", "--site", "kz.ala"]), (entries) => entries.length > 0, 20_000, "the metro's calls refused at kz.ala");
    expect(refused[0]).toMatchObject({ actor: "site:kz.ala.metro-01", result: "refused", details: { code: "permission_denied" } });
  });

  it("revoke - a token made before the revocation is refused; a new invitation enrols the site again", async () => {
    await metro.stop();
    const staleDir = join(metro.dir, "..", "metro-stale");
    const stale = await runCli(["join", "--data", staleDir, "--token", tokenBefore, "--listen", "127.0.0.1:0"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("the token was made before kz.ala.metro-01 was revoked at");
    const fresh = await ala.invite("kz.ala.metro-01");
    const again = new TestNode("kz.ala.metro-01", join(metro.dir, "..", "metro-again"));
    ok(await runCli(["join", "--data", again.dir, "--token", fresh, "--listen", "127.0.0.1:0"]));
    await again.serve();
    const status = await waitFor(() => again.status(), (s) => s.parent?.state === "connected", 20_000, "the re-enrolled metro connected");
    expect(status.epoch).toBe(2);
  });

  it("revoke - only a site of the node's own subtree, never the node itself", async () => {
    const sibling = await ala.cli(["revoke", "--site", "kz.ast"]);
    expect(sibling.code).toBe(1);
    expect(sibling.stderr).toContain("kz.ast is not in the subtree of kz.ala; revoke it from one of its ancestors");
    const self = await kz.cli(["revoke", "--site", "kz"]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("kz is not in the subtree of kz");
  });
});
