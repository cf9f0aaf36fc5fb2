import { createCsr, createRootCa, generateKeyPair, signCsr, type Issuer } from "../pki/certificates.ts";
import type { PolicySigner } from "./policy-signature.ts";

/** Real certificates of a small tree for policy tests: kz (root), kz.ala, kz.ala.metro-01. */
export interface TestSigners {
  rootCaPem: string;
  kz: PolicySigner;
  ala: PolicySigner;
  metro: PolicySigner;
  /** kz.ala's CA, which signs only below kz.ala (and which a compromised region holds). */
  alaCa: Issuer;
}

/** Issues the certificates the way enrolment does: node certificates by the parent's CA. */
export async function createTestSigners(): Promise<TestSigners> {
  const [rootKeys, kzNode, alaNode, alaCaKeys, metroNode] = await Promise.all(Array.from({ length: 5 }, () => generateKeyPair()));
  const rootCaPem = createRootCa("kz", rootKeys!);
  const root: Issuer = { certPem: rootCaPem, privateKeyPem: rootKeys!.privateKeyPem };
  const alaCa: Issuer = { certPem: signCsr(createCsr("kz.ala", "ca", alaCaKeys!), "kz.ala", "ca", root), privateKeyPem: alaCaKeys!.privateKeyPem };
  const node = (site: string, keys: typeof rootKeys, issuer: Issuer, chain: string): PolicySigner => ({
    nodeKeyPem: keys!.privateKeyPem,
    nodeCertChainPem: `${signCsr(createCsr(site, "node", keys!), site, "node", issuer)}${chain}`,
  });
  return {
    rootCaPem,
    alaCa,
    kz: node("kz", kzNode, root, rootCaPem),
    ala: node("kz.ala", alaNode, root, rootCaPem),
    metro: node("kz.ala.metro-01", metroNode, alaCa, `${alaCa.certPem}${rootCaPem}`),
  };
}
