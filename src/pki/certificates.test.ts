import { createHash, X509Certificate } from "node:crypto";
import forge from "node-forge";
import { beforeAll, describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import {
  createCsr,
  createRootCa,
  DEFAULT_VALIDITY_DAYS,
  fingerprint,
  generateKeyPair,
  normalizeSerial,
  serialOf,
  signCsr,
  splitPemBundle,
  type Issuer,
  type KeyPair,
} from "./certificates.ts";

const NOW = Date.UTC(2026, 0, 1);
const DAY_MS = 24 * 60 * 60 * 1000;
const BACKDATE_MS = 5 * 60 * 1000;
const EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

let rootKeys: KeyPair;
let nodeKeys: KeyPair;
let regionKeys: KeyPair;
let rootPem: string;
let root: X509Certificate;
let issuer: Issuer;

beforeAll(async () => {
  [rootKeys, nodeKeys, regionKeys] = await Promise.all([generateKeyPair(), generateKeyPair(), generateKeyPair()]);
  rootPem = createRootCa("kz", rootKeys, NOW);
  root = new X509Certificate(rootPem);
  issuer = { certPem: rootPem, privateKeyPem: rootKeys.privateKeyPem };
});

/** The DER bytes of a single-object PEM. */
function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s/g, ""), "base64");
}

function pemOf(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\r\n${lines.join("\r\n")}\r\n-----END ${label}-----\r\n`;
}

function thrown(run: () => unknown): VmtreeError {
  try {
    run();
  } catch (error) {
    if (error instanceof VmtreeError) return error;
    throw error;
  }
  throw new Error("did not throw");
}

describe("generateKeyPair", () => {
  it("generateKeyPair - returns an RSA-2048 PKCS#1 private key and its SPKI public key", async () => {
    expect(rootKeys.privateKeyPem.startsWith("-----BEGIN RSA PRIVATE KEY-----\n")).toBe(true);
    expect(rootKeys.publicKeyPem.startsWith("-----BEGIN PUBLIC KEY-----\n")).toBe(true);
    const key = forge.pki.privateKeyFromPem(rootKeys.privateKeyPem);
    expect(key.n.bitLength()).toBe(2048);
    expect(forge.pki.publicKeyToPem(forge.pki.setRsaPublicKey(key.n, key.e)).replace(/\r\n/g, "\n")).toBe(rootKeys.publicKeyPem);
    expect(nodeKeys.privateKeyPem).not.toBe(rootKeys.privateKeyPem);
  });
});

describe("createRootCa", () => {
  it("createRootCa - creates a self-signed CA for the site with its SAN", () => {
    expect(root.subject).toBe("CN=kz CA\nO=vmtree");
    expect(root.issuer).toBe("CN=kz CA\nO=vmtree");
    expect(root.ca).toBe(true);
    expect(root.subjectAltName).toBe("DNS:kz.vmtree");
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.checkIssued(root)).toBe(true);
    expect(root.publicKey.export({ type: "spki", format: "pem" })).toBe(rootKeys.publicKeyPem);
  });

  it("createRootCa - is valid from 5 minutes before now for 20 years", () => {
    expect(Date.parse(root.validFrom)).toBe(NOW - BACKDATE_MS);
    expect(Date.parse(root.validTo)).toBe(NOW + 20 * 365 * DAY_MS);
  });

  it("createRootCa - does not verify with another key", () => {
    const other = new X509Certificate(createRootCa("kz", nodeKeys, NOW));
    expect(root.verify(other.publicKey)).toBe(false);
  });

  it("createRootCa - gives each certificate a fresh positive 128-bit serial", () => {
    const again = new X509Certificate(createRootCa("kz", rootKeys, NOW));
    expect(again.serialNumber).not.toBe(root.serialNumber);
    for (const serial of [root.serialNumber, again.serialNumber]) {
      expect(serial).toMatch(/^[0-9A-F]{1,32}$/);
      expect(BigInt(`0x${serial}`) < 2n ** 127n).toBe(true);
    }
  });
});

describe("createCsr", () => {
  it("createCsr - requests the site's subject with the key pair's public key, signed by its private key", () => {
    const csr = forge.pki.certificationRequestFromPem(createCsr("kz.ala", "node", nodeKeys));
    expect(csr.verify()).toBe(true);
    expect(csr.subject.getField("CN")?.value).toBe("kz.ala");
    expect(csr.subject.getField("O")?.value).toBe("vmtree");
    expect(forge.pki.publicKeyToPem(csr.publicKey!).replace(/\r\n/g, "\n")).toBe(nodeKeys.publicKeyPem);
  });

  it("createCsr - names a CA request 'SITE CA'", () => {
    const csr = forge.pki.certificationRequestFromPem(createCsr("kz.ala", "ca", regionKeys));
    expect(csr.subject.getField("CN")?.value).toBe("kz.ala CA");
  });
});

describe("signCsr", () => {
  it("signCsr - names the site it was given, not the one the CSR asked for", () => {
    const cert = new X509Certificate(signCsr(createCsr("kz.evil", "node", nodeKeys), "kz.ala", "node", issuer, { now: NOW }));
    expect(cert.subject).toBe("CN=kz.ala\nO=vmtree");
    expect(cert.subjectAltName).toBe("DNS:ala.kz.vmtree");
    expect(cert.subject).not.toContain("kz.evil");
  });

  it("signCsr - issues a node certificate that verifies with the issuer's key and is not a CA", () => {
    const cert = new X509Certificate(signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer, { now: NOW }));
    expect(cert.issuer).toBe("CN=kz CA\nO=vmtree");
    expect(cert.verify(root.publicKey)).toBe(true);
    expect(cert.checkIssued(root)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]);
    expect(cert.publicKey.export({ type: "spki", format: "pem" })).toBe(nodeKeys.publicKeyPem);
  });

  it("signCsr - issues a CA certificate that is a CA and can issue in turn", () => {
    const caPem = signCsr(createCsr("kz.ala", "ca", regionKeys), "kz.ala", "ca", issuer, { now: NOW });
    const ca = new X509Certificate(caPem);
    expect(ca.subject).toBe("CN=kz.ala CA\nO=vmtree");
    expect(ca.subjectAltName).toBe("DNS:ala.kz.vmtree");
    expect(ca.ca).toBe(true);
    expect(ca.verify(root.publicKey)).toBe(true);
    expect(ca.checkIssued(root)).toBe(true);

    const leaf = new X509Certificate(
      signCsr(createCsr("kz.ala.metro-01", "node", nodeKeys), "kz.ala.metro-01", "node", { certPem: caPem, privateKeyPem: regionKeys.privateKeyPem }),
    );
    expect(leaf.issuer).toBe("CN=kz.ala CA\nO=vmtree");
    expect(leaf.subjectAltName).toBe("DNS:metro-01.ala.kz.vmtree");
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(false);
    expect(leaf.checkIssued(root)).toBe(false);
  });

  it("signCsr - is valid from 5 minutes before now for the kind's default or the given days", () => {
    const node = new X509Certificate(signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer, { now: NOW }));
    const ca = new X509Certificate(signCsr(createCsr("kz.ala", "ca", regionKeys), "kz.ala", "ca", issuer, { now: NOW }));
    const short = new X509Certificate(signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer, { now: NOW, days: 7 }));
    expect(DEFAULT_VALIDITY_DAYS).toEqual({ node: 90, ca: 1825 });
    expect(Date.parse(node.validFrom)).toBe(NOW - BACKDATE_MS);
    expect(Date.parse(node.validTo)).toBe(NOW + 90 * DAY_MS);
    expect(Date.parse(ca.validTo)).toBe(NOW + 1825 * DAY_MS);
    expect(Date.parse(short.validTo)).toBe(NOW + 7 * DAY_MS);
  });

  it("signCsr - refuses a CSR whose signature does not verify, with invalid_argument", () => {
    const der = derOf(createCsr("kz.evil", "node", nodeKeys));
    const at = der.indexOf("kz.evil");
    expect(at).toBeGreaterThan(0);
    der.write("kz.evim", at, "latin1");
    const error = thrown(() => signCsr(pemOf("CERTIFICATE REQUEST", der), "kz.ala", "node", issuer));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe("[invalid_argument] the node CSR signature does not verify");
  });

  // node-forge's csr.verify() throws, rather than returning false, on a signature that
  // does not decrypt to a PKCS#1 block.
  it("signCsr - refuses a CSR with a tampered signature, with invalid_argument", () => {
    const der = derOf(createCsr("kz.ala", "node", nodeKeys));
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
    const error = thrown(() => signCsr(pemOf("CERTIFICATE REQUEST", der), "kz.ala", "node", issuer));
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe("the node CSR signature does not verify");
  });

  it("signCsr - refuses a CSR whose public key was tampered with (one base64 character of the PEM body), with invalid_argument", () => {
    const csr = createCsr("kz.ala", "ca", regionKeys);
    const lines = csr.split(/\r?\n/);
    // The sixth line lies inside the RSA modulus of the request's public key.
    const line = lines[5]!;
    lines[5] = line.slice(0, 10) + (line[10] === "A" ? "B" : "A") + line.slice(11);
    const error = thrown(() => signCsr(lines.join("\n"), "kz.ala", "ca", issuer));
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe("the ca CSR signature does not verify");
  });

  it("signCsr - refuses text that is not a CSR, with invalid_argument", () => {
    for (const text of ["", "hello", rootPem]) {
      const error = thrown(() => signCsr(text, "kz.ala", "node", issuer));
      expect(error.code).toBe("invalid_argument");
      expect(error.rawMessage).toBe("the node CSR is not a valid PEM certificate request");
    }
  });

  it("signCsr - limits a CA certificate to its site's DNS subtree with a critical name constraint", () => {
    const caPem = signCsr(createCsr("kz.ala", "ca", regionKeys), "kz.ala", "ca", issuer, { now: NOW });
    const extension = (forge.pki.certificateFromPem(caPem).extensions as { id: string; critical: boolean }[]).find((e) => e.id === "2.5.29.30");
    expect(extension?.critical).toBe(true);
    // Node's own parser reads the permitted subtree back.
    expect(new X509Certificate(caPem).toLegacyObject()).toMatchObject({ ca: true });
    expect(derOf(caPem).includes(Buffer.from("ala.kz.vmtree"))).toBe(true);
  });

  it("signCsr - node certificates carry no name constraint", () => {
    const nodePem = signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer, { now: NOW });
    const ids = (forge.pki.certificateFromPem(nodePem).extensions as { id: string }[]).map((e) => e.id);
    expect(ids).not.toContain("2.5.29.30");
  });
});

describe("fingerprint", () => {
  it("fingerprint - is X509Certificate.fingerprint256 without colons in lower case", () => {
    expect(fingerprint(rootPem)).toBe(root.fingerprint256.replaceAll(":", "").toLowerCase());
    expect(fingerprint(rootPem)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("fingerprint - is the SHA-256 of the certificate's DER", () => {
    expect(fingerprint(rootPem)).toBe(createHash("sha256").update(derOf(rootPem)).digest("hex"));
    expect(fingerprint(rootPem)).toBe(createHash("sha256").update(root.raw).digest("hex"));
  });

  it("fingerprint - differs between certificates", () => {
    const node = signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer);
    expect(fingerprint(node)).not.toBe(fingerprint(rootPem));
  });
});

describe("serialOf", () => {
  it("serialOf - is the certificate's serial in lower case without leading zeros", () => {
    const pem = signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer);
    const cert = forge.pki.certificateFromPem(pem);
    expect(serialOf(pem)).toBe(cert.serialNumber.replace(/^0+/, ""));
    expect(serialOf(pem)).toBe(new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, ""));
    expect(serialOf(pem)).toMatch(/^[1-9a-f][0-9a-f]*$/);
  });
});

describe("normalizeSerial", () => {
  it.each([
    ["00AB12", "ab12"],
    ["ab12", "ab12"],
    ["AB12", "ab12"],
    ["0000000f", "f"],
    ["0", "0"],
    ["000", "0"],
    ["7F0001", "7f0001"],
    ["100", "100"],
  ])("normalizeSerial - %s becomes %s", (serial, expected) => {
    expect(normalizeSerial(serial)).toBe(expected);
  });

  it("normalizeSerial - makes forge and node:crypto spellings equal", () => {
    expect(normalizeSerial("00a1b2")).toBe(normalizeSerial("A1B2"));
  });
});

describe("splitPemBundle", () => {
  it("splitPemBundle - splits a chain into its certificates, each ending with a newline", () => {
    const node = signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", issuer);
    const parts = splitPemBundle(node + rootPem);
    expect(parts).toHaveLength(2);
    expect(parts.map((pem) => fingerprint(pem))).toEqual([fingerprint(node), fingerprint(rootPem)]);
    for (const part of parts) {
      expect(part.startsWith("-----BEGIN CERTIFICATE-----")).toBe(true);
      expect(part.endsWith("-----END CERTIFICATE-----\n")).toBe(true);
    }
  });

  it("splitPemBundle - ignores text between certificates and other PEM objects", () => {
    const bundle = `subject=kz\n${rootPem}\n# comment\n${rootKeys.publicKeyPem}${rootPem}trailing`;
    expect(splitPemBundle(bundle).map((pem) => fingerprint(pem))).toEqual([fingerprint(rootPem), fingerprint(rootPem)]);
  });

  it("splitPemBundle - returns an empty list when there is no certificate", () => {
    expect(splitPemBundle("")).toEqual([]);
    expect(splitPemBundle(rootKeys.privateKeyPem)).toEqual([]);
    expect(splitPemBundle("-----BEGIN CERTIFICATE-----")).toEqual([]);
  });

  it("splitPemBundle - keeps CRLF certificates readable", () => {
    const crlf = rootPem.replace(/\r?\n/g, "\r\n");
    const parts = splitPemBundle(crlf + crlf);
    expect(parts).toHaveLength(2);
    expect(fingerprint(parts[1]!)).toBe(fingerprint(rootPem));
  });
});
