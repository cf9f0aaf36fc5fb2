import { generateKeyPair, createCsr, signCsr } from "../pki/certificates.ts";
import { beforeAll, describe, expect, it } from "vitest";
import type { PolicyDocument, PolicySet } from "../gen/vmtree/v1/policy.ts";
import { policySetHash } from "./policy-set.ts";
import { signatureProblem, signPolicySet } from "./policy-signature.ts";
import { createTestSigners, type TestSigners } from "./test-signers.ts";

let signers: TestSigners;

beforeAll(async () => {
  signers = await createTestSigners();
});

const DOCUMENT: PolicyDocument = { roles: [], groups: [], bindings: [], max_policy_age_ms: 0 };

function unsigned(author: string, version = 1): PolicySet {
  return {
    author, version, created_ms: Date.now(), created_by: "user:admin", document: DOCUMENT,
    sha256: policySetHash(author, version, DOCUMENT), signature: Buffer.alloc(0), signer_chain_pem: "",
  };
}

describe("policy set signatures (R-6.3, R-6.5)", () => {
  it("signatureProblem - accepts a set signed by its author: the root, a region, a site", () => {
    expect(signatureProblem(signPolicySet(unsigned("kz"), signers.kz), signers.rootCaPem)).toBeUndefined();
    expect(signatureProblem(signPolicySet(unsigned("kz.ala"), signers.ala), signers.rootCaPem)).toBeUndefined();
    expect(signatureProblem(signPolicySet(unsigned("kz.ala.metro-01"), signers.metro), signers.rootCaPem)).toBeUndefined();
  });

  it("signatureProblem - refuses an unsigned set, and one signed by another node", () => {
    expect(signatureProblem(unsigned("kz"), signers.rootCaPem)).toBe("it is not signed");
    expect(signatureProblem(signPolicySet(unsigned("kz"), signers.ala), signers.rootCaPem)).toBe("it is signed with a certificate that is not kz's node certificate");
  });

  it("signatureProblem - refuses a set a relaying node altered: a higher version, another creator", () => {
    const signed = signPolicySet(unsigned("kz", 3), signers.kz);
    const bumped = { ...signed, version: 1_000_000, sha256: policySetHash("kz", 1_000_000, DOCUMENT) };
    expect(signatureProblem(bumped, signers.rootCaPem)).toBe("its signature does not verify");
    expect(signatureProblem({ ...signed, created_by: "user:mallory" }, signers.rootCaPem)).toBe("its signature does not verify");
  });

  it("signatureProblem - refuses a root set signed with a certificate a compromised region minted for kz", async () => {
    const keys = await generateKeyPair();
    const forged = { nodeKeyPem: keys.privateKeyPem, nodeCertChainPem: `${signCsr(createCsr("kz", "node", keys), "kz", "node", signers.alaCa)}${signers.alaCa.certPem}${signers.rootCaPem}` };
    expect(signatureProblem(signPolicySet(unsigned("kz"), forged), signers.rootCaPem)).toBe("its signer's chain does not lead from kz to the root");
    // The same for a set passed off as the region's sibling's, minted one level down.
    const sibling = { nodeKeyPem: keys.privateKeyPem, nodeCertChainPem: `${signCsr(createCsr("kz.ast", "node", keys), "kz.ast", "node", signers.alaCa)}${signers.alaCa.certPem}` };
    expect(signatureProblem(signPolicySet(unsigned("kz.ast"), sibling), signers.rootCaPem)).toBe("its signer's chain does not lead from kz.ast to the root");
  });

  it("signatureProblem - refuses a chain to another root", async () => {
    const other = await createTestSigners();
    expect(signatureProblem(signPolicySet(unsigned("kz"), other.kz), signers.rootCaPem)).toBe("its signer's chain does not lead from kz to the root");
    // Without its own root in the chain, the other tree's certificate meets this root's key and fails it.
    const bare = { ...other.kz, nodeCertChainPem: other.kz.nodeCertChainPem.slice(0, other.kz.nodeCertChainPem.indexOf("-----END CERTIFICATE-----") + 26) };
    expect(signatureProblem(signPolicySet(unsigned("kz"), bare), signers.rootCaPem)).toBe("its signer's certificate is not issued by kz's CA");
  });
});
