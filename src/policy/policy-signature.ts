import { createPrivateKey, sign, verify, X509Certificate } from "node:crypto";
import type { PolicySet } from "../gen/vmtree/v1/policy.ts";
import { fingerprint, splitPemBundle } from "../pki/certificates.ts";
import { parentOf, siteDnsName } from "../pki/site-id.ts";

/** What a node signs its own policy sets with: its node key and certificate chain. */
export interface PolicySigner {
  nodeKeyPem: string;
  /** The node certificate followed by its chain. */
  nodeCertChainPem: string;
}

/** A chain longer than the tree is deep (8) plus the root is not one vmtree issued. */
const MAX_CHAIN_CERTIFICATES = 10;

/** The bytes a signature covers: everything of the set that a relaying node could change. */
function signedBytes(set: PolicySet): Buffer {
  return Buffer.from(["vmtree-policy-set-v1", set.author, String(set.version), String(set.created_ms), set.created_by, set.sha256].join("\n"));
}

/** Signs `set` (its sha256 already set) as its author. */
export function signPolicySet(set: PolicySet, signer: PolicySigner): PolicySet {
  const signature = sign("sha256", signedBytes(set), createPrivateKey(signer.nodeKeyPem));
  return { ...set, signature, signer_chain_pem: signer.nodeCertChainPem };
}

/**
 * Why `set` is not signed by its author, or undefined when it is. The signer's chain must
 * be exactly the one vmtree issues: the author's node certificate (naming the author,
 * valid when the set was made), signed by the CA of the author's parent (the root CA for
 * the root), signed by the CA above, and so on up to the root CA this node trusts. So a
 * region, whose CA can sign only below it, cannot make a set pass as its parent's or the
 * root's, and no node on the way can alter a set it relays.
 */
export function signatureProblem(set: PolicySet, rootCaPem: string): string | undefined {
  if (set.signature.length === 0) return "it is not signed";
  let chain: X509Certificate[];
  try {
    chain = splitPemBundle(set.signer_chain_pem).slice(0, MAX_CHAIN_CERTIFICATES + 1).map((pem) => new X509Certificate(pem));
  } catch {
    return "its signer's certificate chain does not parse";
  }
  const rootFingerprint = fingerprint(rootCaPem);
  // The root CA may or may not be included; it is always taken from this node's trust.
  const issued = chain.filter((cert) => cert.fingerprint256.replaceAll(":", "").toLowerCase() !== rootFingerprint);
  if (issued.length === 0 || issued.length > MAX_CHAIN_CERTIFICATES) return "its signer's certificate chain is not one vmtree issues";
  const [leaf, ...cas] = issued;
  if (!names(leaf!, set.author) || leaf!.ca) return `it is signed with a certificate that is not ${set.author}'s node certificate`;
  const path = [...cas, new X509Certificate(rootCaPem)];
  const expectedIssuers = issuerSites(set.author);
  if (path.length !== expectedIssuers.length) return `its signer's chain does not lead from ${set.author} to the root`;
  let subject = leaf!;
  for (const [index, issuer] of path.entries()) {
    if (!issuer.ca || !names(issuer, expectedIssuers[index]!) || !subject.verify(issuer.publicKey)) {
      return `its signer's certificate is not issued by ${expectedIssuers[index]}'s CA`;
    }
    subject = issuer;
  }
  if (!validAt(leaf!, set.created_ms)) return `${set.author}'s certificate was not valid when the set was made`;
  return verify("sha256", signedBytes(set), leaf!.publicKey, Buffer.from(set.signature)) ? undefined : "its signature does not verify";
}

/** The sites whose CAs issue the chain of `author`'s node certificate, nearest first, ending at the root. */
function issuerSites(author: string): string[] {
  const sites: string[] = [];
  for (let site = parentOf(author) ?? author; ; site = parentOf(site)!) {
    sites.push(site);
    if (parentOf(site) === undefined) return sites;
  }
}

function names(cert: X509Certificate, site: string): boolean {
  return (cert.subjectAltName ?? "").split(", ").includes(`DNS:${siteDnsName(site)}`);
}

function validAt(cert: X509Certificate, ms: number): boolean {
  return Date.parse(cert.validFrom) <= ms && ms <= Date.parse(cert.validTo);
}
