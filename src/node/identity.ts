import { readFile } from "node:fs/promises";
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from "node:crypto";
import { VmtreeError } from "../errors.ts";
import { fingerprint, splitPemBundle } from "../pki/certificates.ts";
import { siteDnsName } from "../pki/site-id.ts";
import { remedyFor, type DataDir } from "./data-dir.ts";

/** A node's certificates and keys as read from its data directory. */
export interface NodeIdentity {
  rootCaPem: string;
  rootCaFingerprint: string;
  /** Node certificate followed by its chain. */
  nodeCertChainPem: string;
  nodeKeyPem: string;
  /** This node's CA certificate, which signs its children's, followed by its chain. */
  caCertChainPem: string;
  caKeyPem: string;
}

/** The files of a node's identity, as {@link checkIdentity} names them in errors. */
export interface IdentityFiles {
  rootCa: string;
  nodeCert: string;
  nodeKey: string;
  caCert: string;
  caKey: string;
  /** node.json, named when a certificate names another site than it. */
  config: string;
  /** The data directory, named in what to do. */
  root: string;
}

function filesOf(dir: DataDir): IdentityFiles {
  return {
    rootCa: dir.rootCaFile,
    nodeCert: dir.nodeCertFile,
    nodeKey: dir.nodeKeyFile,
    caCert: dir.caCertFile,
    caKey: dir.caKeyFile,
    config: dir.configFile,
    root: dir.root,
  };
}

/**
 * Reads the identity files written by `init` or `join` and checks them with
 * {@link checkIdentity} against `site`, the site of node.json.
 * Rejects with `failed_precondition` naming the file at fault and what to do.
 */
export async function readIdentity(dir: DataDir, site: string): Promise<NodeIdentity> {
  const files = filesOf(dir);
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(file, "utf8");
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      const problem = code === "ENOENT" ? "is missing" : `cannot be read (${code ?? (cause as Error).message})`;
      throw new VmtreeError("failed_precondition", `${file} ${problem}; ${remedyFor(dir.root)}`, { cause });
    }
  };
  const [rootCaPem, nodeCertChainPem, nodeKeyPem, caCertChainPem, caKeyPem] = await Promise.all(
    [files.rootCa, files.nodeCert, files.nodeKey, files.caCert, files.caKey].map(read),
  );
  const identity: NodeIdentity = {
    rootCaPem: rootCaPem!,
    rootCaFingerprint: "",
    nodeCertChainPem: nodeCertChainPem!,
    nodeKeyPem: nodeKeyPem!,
    caCertChainPem: caCertChainPem!,
    caKeyPem: caKeyPem!,
  };
  checkIdentity(identity, site, files);
  return { ...identity, rootCaFingerprint: fingerprint(identity.rootCaPem) };
}

/**
 * Checks a node's identity before anything is served: every PEM file parses, the root
 * CA is a self-signed CA certificate, the node and CA certificate chains end at it and
 * every link of them verifies, both name `site`, and each key belongs to its certificate.
 * Throws `failed_precondition` naming the file, what is wrong with it and what to do.
 */
export function checkIdentity(pem: Omit<NodeIdentity, "rootCaFingerprint">, site: string, files: IdentityFiles): void {
  const refuse = (file: string, problem: string): never => {
    throw new VmtreeError("failed_precondition", `${file} ${problem}; ${remedyFor(files.root)}`);
  };

  const rootChain = certificates(pem.rootCaPem, files.rootCa, refuse);
  const root = rootChain[0]!;
  if (rootChain.length !== 1) refuse(files.rootCa, `holds ${rootChain.length} certificates, expected the tree's root CA alone`);
  if (!root.ca || !root.checkIssued(root) || !root.verify(root.publicKey)) refuse(files.rootCa, "is not a self-signed CA certificate");

  const checkChain = (file: string, text: string, commonName: string, ca: boolean): X509Certificate => {
    const chain = certificates(text, file, refuse);
    const leaf = chain[0]!;
    const named = commonNameOf(leaf);
    const dnsNames = (leaf.subjectAltName ?? "").split(",").map((name) => name.trim());
    if (named !== commonName || !dnsNames.includes(`DNS:${siteDnsName(site)}`)) {
      refuse(file, `is the certificate of ${JSON.stringify(named ?? leaf.subject)}, but ${files.config} names site ${site}`);
    }
    if (leaf.ca !== ca) refuse(file, ca ? "is not a CA certificate" : "is a CA certificate, expected the node's own");
    const linksVerify = chain.every((cert, i) => {
      const issuer = chain[i + 1] ?? root;
      return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
    });
    if (!linksVerify || chain.at(-1)!.fingerprint256 !== root.fingerprint256) refuse(file, `does not chain to the root CA in ${files.rootCa}`);
    return leaf;
  };
  const checkKey = (keyFile: string, keyText: string, certFile: string, cert: X509Certificate): void => {
    let key: KeyObject;
    try {
      key = createPrivateKey(keyText);
    } catch (cause) {
      return refuse(keyFile, `is not a PEM private key (${(cause as Error).message})`);
    }
    const spki = (k: KeyObject) => k.export({ type: "spki", format: "der" });
    if (!spki(createPublicKey(key)).equals(spki(cert.publicKey))) refuse(keyFile, `is not the key of the certificate in ${certFile}`);
  };

  const nodeLeaf = checkChain(files.nodeCert, pem.nodeCertChainPem, site, false);
  checkKey(files.nodeKey, pem.nodeKeyPem, files.nodeCert, nodeLeaf);
  const caLeaf = checkChain(files.caCert, pem.caCertChainPem, `${site} CA`, true);
  checkKey(files.caKey, pem.caKeyPem, files.caCert, caLeaf);
}

/** Parses a PEM bundle that must hold at least one certificate and nothing else. */
function certificates(text: string, file: string, refuse: (file: string, problem: string) => never): X509Certificate[] {
  const blocks = splitPemBundle(text);
  if (blocks.length === 0) refuse(file, text.includes("-----BEGIN CERTIFICATE-----") ? "is truncated (a certificate has no END line)" : "holds no PEM certificate");
  const rest = text.replace(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g, "");
  if (rest.trim() !== "") refuse(file, rest.includes("-----BEGIN") ? "is truncated (a certificate has no END line)" : "holds text that is not a PEM certificate");
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      return refuse(file, `certificate ${i + 1} cannot be parsed (${(cause as Error).message})`);
    }
  });
}

function commonNameOf(cert: X509Certificate): string | undefined {
  return /^CN=(.*)$/m.exec(cert.subject)?.[1];
}

/** The first certificate of a chain. */
export function leafOf(chainPem: string): string {
  const leaf = splitPemBundle(chainPem)[0];
  if (!leaf) throw new Error("empty certificate chain");
  return leaf;
}

/** Days until the node certificate expires (negative when expired). */
export function daysLeft(chainPem: string, now = Date.now()): number {
  return (Date.parse(new X509Certificate(leafOf(chainPem)).validTo) - now) / 86_400_000;
}
