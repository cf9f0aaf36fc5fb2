import { generateKeyPair as generateKeyPairCb, randomBytes, X509Certificate } from "node:crypto";
import { promisify } from "node:util";
import forge from "node-forge";
import { VmtreeError } from "../errors.ts";
import { siteDnsName } from "./site-id.ts";

const generateKeyPairAsync = promisify(generateKeyPairCb);

/** A private key (PKCS#1 PEM) with its public key (SPKI PEM). */
export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** What a certificate is for: a node's TLS identity, or a CA that signs a subtree. */
export type CertificateKind = "node" | "ca";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerates clocks that run a little behind the issuer's. */
const BACKDATE_MS = 5 * 60 * 1000;

/**
 * A node certificate is renewed over its link once two thirds of its lifetime has passed
 * (see node/renewal.ts); a CA certificate is not renewed, so it lasts far longer than the
 * node certificates below it.
 */
export const DEFAULT_VALIDITY_DAYS: Readonly<Record<CertificateKind, number>> = { node: 90, ca: 5 * 365 };
/**
 * Test knob, not for production: node certificates this node signs last this many seconds
 * and are not backdated, so that tests can watch renewal and expiry happen.
 */
export const NODE_CERT_SECONDS_ENV = "VMTREE_NODE_CERT_SECONDS";

/** The lifetime in days and backdating of a `kind` certificate issued now. */
function lifetimeOf(kind: CertificateKind, days: number | undefined): { days: number; backdateMs: number } {
  const seconds = Number(process.env[NODE_CERT_SECONDS_ENV]);
  if (days === undefined && kind === "node" && Number.isFinite(seconds) && seconds > 0) return { days: seconds / 86_400, backdateMs: 0 };
  return { days: days ?? DEFAULT_VALIDITY_DAYS[kind], backdateMs: BACKDATE_MS };
}
const ROOT_VALIDITY_DAYS = 20 * 365;

/** Generates an RSA-2048 key pair with Node's crypto (node-forge's own generator is far slower). */
export async function generateKeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  // A leading zero bit keeps the DER integer positive, as RFC 5280 requires.
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString("hex");
}

function siteSubject(site: string, kind: CertificateKind): forge.pki.CertificateField[] {
  return [
    { name: "commonName", value: kind === "ca" ? `${site} CA` : site },
    { name: "organizationName", value: "vmtree" },
  ];
}

function extensionsFor(site: string, kind: CertificateKind): object[] {
  const altNames = { name: "subjectAltName", altNames: [{ type: 2, value: siteDnsName(site) }] };
  if (kind === "ca") {
    return [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
      subtreeConstraint(site),
      altNames,
      { name: "subjectKeyIdentifier" },
    ];
  }
  return [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    altNames,
    { name: "subjectKeyIdentifier" },
  ];
}

/**
 * The nameConstraints extension (RFC 5280 4.2.1.10) that limits a site's CA to its own
 * subtree: every certificate below it must name a DNS name under the site's, and site
 * names are reversed so that a subtree is a DNS suffix (`metro-01.ala.kz.vmtree` lies under
 * `ala.kz.vmtree`). TLS verification (OpenSSL) enforces it along the whole chain, so a
 * certificate a compromised region signs for a site of another region is refused by every
 * node (DESIGN.md invariant 6). node-forge has no builder for it, hence the ASN.1.
 */
function subtreeConstraint(site: string): object {
  const { asn1 } = forge;
  const dnsName = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, siteDnsName(site));
  const subtree = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [dnsName]);
  const permitted = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [subtree]);
  return { id: NAME_CONSTRAINTS_OID, critical: true, value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [permitted]) };
}

const NAME_CONSTRAINTS_OID = "2.5.29.30";

function validity(cert: forge.pki.Certificate, days: number, now: number, backdateMs = BACKDATE_MS): void {
  cert.validity.notBefore = new Date(now - backdateMs);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
}

/** Creates the self-signed root CA certificate of a new tree. */
export function createRootCa(site: string, keys: KeyPair, now = Date.now()): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = randomSerial();
  validity(cert, ROOT_VALIDITY_DAYS, now);
  const subject = siteSubject(site, "ca");
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions(extensionsFor(site, "ca"));
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** Creates a PKCS#10 request for a site's node or CA certificate. */
export function createCsr(site: string, kind: CertificateKind, keys: KeyPair): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  csr.setSubject(siteSubject(site, kind));
  csr.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** What an issuing CA needs to sign. */
export interface Issuer {
  certPem: string;
  privateKeyPem: string;
}

/**
 * Signs a CSR for `site`. The subject and extensions come from `site` and `kind`,
 * never from the CSR, so a requester cannot ask for more than it is given; the CSR
 * only contributes its (verified) public key.
 * Rejects with `invalid_argument` when the CSR is malformed or its signature is wrong.
 */
export function signCsr(
  csrPem: string,
  site: string,
  kind: CertificateKind,
  issuer: Issuer,
  options: { days?: number; now?: number } = {},
): string {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (cause) {
    throw new VmtreeError("invalid_argument", `the ${kind} CSR is not a valid PEM certificate request`, { cause });
  }
  if (!verifies(csr)) throw new VmtreeError("invalid_argument", `the ${kind} CSR signature does not verify`);
  if (!csr.publicKey) throw new VmtreeError("invalid_argument", `the ${kind} CSR has no RSA public key`);
  const issuerCert = forge.pki.certificateFromPem(issuer.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey;
  cert.serialNumber = randomSerial();
  const lifetime = lifetimeOf(kind, options.days);
  validity(cert, lifetime.days, options.now ?? Date.now(), lifetime.backdateMs);
  cert.setSubject(siteSubject(site, kind));
  cert.setIssuer(issuerCert.subject.attributes);
  cert.setExtensions([
    ...extensionsFor(site, kind),
    { name: "authorityKeyIdentifier", keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(issuer.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** node-forge throws rather than returning false for some forged signatures. */
function verifies(csr: forge.pki.CertificateSigningRequest): boolean {
  try {
    return csr.verify();
  } catch {
    return false;
  }
}

/** SHA-256 fingerprint of a certificate's DER, lower-case hex without separators. */
export function fingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replaceAll(":", "").toLowerCase();
}

/** Serial number of a certificate, lower-case hex without leading zeros. */
export function serialOf(certPem: string): string {
  return normalizeSerial(new X509Certificate(certPem).serialNumber);
}

/** Serial numbers reach us zero-padded or not depending on the API; compare them normalized. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, "");
}

/** Splits a PEM bundle into its certificates. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((pem) => `${pem}\n`) ?? [];
}
