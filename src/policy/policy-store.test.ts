import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PolicySet, type PolicyDocument } from "../gen/vmtree/v1/policy.ts";
import { NodeStore } from "../store/node-store.ts";
import { policySetHash } from "./policy-set.ts";
import { signPolicySet } from "./policy-signature.ts";
import { PolicyStore, type PolicyTrust } from "./policy-store.ts";
import { createTestSigners, type TestSigners } from "./test-signers.ts";

let dir: string;
let store: NodeStore;
let signers: TestSigners;

beforeAll(async () => {
  signers = await createTestSigners();
});

/** kz.ala's trust, or kz's when `site` is kz. */
function trust(site: "kz" | "kz.ala"): PolicyTrust {
  return { rootCaPem: signers.rootCaPem, signer: site === "kz" ? signers.kz : signers.ala };
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-policy-store-"));
  store = await NodeStore.open(path.join(dir, "db"));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function documentDenying(user: string): PolicyDocument {
  return {
    roles: [],
    groups: [],
    bindings: [{
      id: `no-${user}`, subject: `user:${user}`, role: "", action: "view_live", scope: "kz", cameras: [], camera_types: [],
      effect: "deny", valid_from_ms: 0, valid_until_ms: 0, valid_until_implied: false, valid_from_implied: false,
    }],
    max_policy_age_ms: 0,
  };
}

/** A set of kz, signed by kz. */
function setOf(author: "kz", version: number, document: PolicyDocument): PolicySet {
  const set = { author, version, created_ms: Date.now(), created_by: "user:admin", document, sha256: policySetHash(author, version, document), signature: Buffer.alloc(0), signer_chain_pem: "" };
  return signPolicySet(set, signers.kz);
}

describe("PolicyStore", () => {
  it("PolicyStore.storeReceived - stores newer sets, skips older ones, and returns a bad set as refused instead of throwing", async () => {
    const policies = new PolicyStore(store, "kz.ala", trust("kz.ala"));
    const v2 = setOf("kz", 2, documentDenying("mallory"));
    const forged = { ...setOf("kz", 3, documentDenying("mallory")), sha256: "0".repeat(64) };
    expect(await policies.storeReceived([v2])).toEqual({ stored: [v2], refused: [] });
    const altered = { ...setOf("kz", 4, documentDenying("mallory")), created_by: "user:mallory" };
    const again = await policies.storeReceived([setOf("kz", 1, documentDenying("x")), forged, altered]);
    expect(again.stored).toEqual([]);
    expect(again.refused.map((r) => [r.set.version, r.reason.slice(0, 38)])).toEqual([
      [3, "policy set of kz version 3: sha256 \"00"],
      [4, "policy set of kz version 4: its signat"],
    ]);
    expect(await policies.versions()).toEqual([{ author: "kz", version: 2 }]);
  });

  it("PolicyStore.applyOwn - signs the node's own set so that its subtree can verify it", async () => {
    const { set } = await new PolicyStore(store, "kz", trust("kz")).applyOwn(documentDenying("mallory"), "user:admin", () => false);
    const child = new PolicyStore(store, "kz.ala", trust("kz.ala"));
    expect((await child.storeReceived([set])).refused).toEqual([]);
  });

  it("PolicyStore.damaged - a set edited in the store is found when loaded, not offered as held, and replaced by the same version", async () => {
    const v2 = setOf("kz", 2, documentDenying("mallory"));
    await new PolicyStore(store, "kz.ala", trust("kz.ala")).storeReceived([v2]);
    // Someone with the files turns the deny into an allow, leaving the hash as it was.
    const section = store.section<{ set: PolicySet; receivedMs: number }>("policy-set");
    const held = (await section.get("kz"))!;
    held.set.document!.bindings[0]!.effect = "allow";
    await section.put("kz", held);

    const reopened = new PolicyStore(store, "kz.ala", trust("kz.ala"));
    expect([...(await reopened.damaged()).keys()]).toEqual(["kz"]);
    expect(await reopened.intactVersions()).toEqual([]);
    expect((await reopened.storeReceived([v2])).stored).toEqual([v2]);
    expect([...(await reopened.damaged()).keys()]).toEqual([]);
    expect((await reopened.sets())[0]!.set.document!.bindings[0]!.effect).toBe("deny");
  });

  it("PolicyStore.applyOwn - numbers past the highest version the subtree reported, so a store restored from backup never reuses a version", async () => {
    const policies = new PolicyStore(store, "kz", trust("kz"));
    await policies.recordApplied("kz.ala", [{ site: "kz.ala", versions: [{ author: "kz", version: 7 }], applied_ms: 5 }]);
    const { set } = await policies.applyOwn(documentDenying("mallory"), "user:admin", () => false);
    expect(set.version).toBe(8);
  });

  it("PolicyStore.sets - a set read back from the store encodes for the link again, its signature intact", async () => {
    await new PolicyStore(store, "kz", trust("kz")).applyOwn(documentDenying("mallory"), "user:admin", () => false);
    const [held] = await new PolicyStore(store, "kz", trust("kz")).sets();
    expect(Buffer.isBuffer(held!.set.signature)).toBe(true);
    const decoded = PolicySet.decode(PolicySet.encode(held!.set).finish());
    expect((await new PolicyStore(store, "kz.ala", trust("kz.ala")).storeReceived([decoded])).refused).toEqual([]);
  });

  it("PolicyStore.applyOwn - ignores a reported version implausibly far above the one held, so no report can exhaust the numbering", async () => {
    const policies = new PolicyStore(store, "kz", trust("kz"));
    await policies.recordApplied("kz.ala", [{ site: "kz.ala", versions: [{ author: "kz", version: 2 ** 31 - 1 }], applied_ms: 5 }]);
    const { set } = await policies.applyOwn(documentDenying("mallory"), "user:admin", () => false);
    expect(set.version).toBe(1);
  });

  it("PolicyStore.recordApplied - keeps the last report of a node whatever its clock said, and refuses reports from outside the child's subtree", async () => {
    const policies = new PolicyStore(store, "kz", trust("kz"));
    await policies.recordApplied("kz.ala", [{ site: "kz.ala", versions: [{ author: "kz", version: 1 }], applied_ms: 2_000_000_000_000 }]);
    await policies.recordApplied("kz.ala", [{ site: "kz.ala", versions: [{ author: "kz", version: 2 }], applied_ms: 1_000 }]);
    expect(await policies.applied()).toEqual([{ site: "kz.ala", versions: [{ author: "kz", version: 2 }], applied_ms: 1_000 }]);
    await expect(policies.recordApplied("kz.ala", [{ site: "kz.ast", versions: [], applied_ms: 1 }])).rejects.toThrow(
      "[permission_denied] site kz.ala reported the policies of kz.ast, outside its subtree",
    );
  });
});
