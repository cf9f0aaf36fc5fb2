import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { createCsr, createRootCa, generateKeyPair, signCsr, type KeyPair } from "../pki/certificates.ts";
import { DataDir } from "./data-dir.ts";
import { checkIdentity, readIdentity, type IdentityFiles, type NodeIdentity } from "./identity.ts";

const ROOT = "/data/ala";
const FILES: IdentityFiles = {
  rootCa: `${ROOT}/tls/root-ca.pem`,
  nodeCert: `${ROOT}/tls/node.pem`,
  nodeKey: `${ROOT}/tls/node.key`,
  caCert: `${ROOT}/tls/ca.pem`,
  caKey: `${ROOT}/tls/ca.key`,
  config: `${ROOT}/node.json`,
  root: ROOT,
};
const REMEDY = `restore ${ROOT} from its backup, or enrol the node again into an empty data directory`;

type Pem = Omit<NodeIdentity, "rootCaFingerprint">;

let rootKeys: KeyPair;
let rootCa: string;
let root: Pem;
let ala: Pem;
let otherTree: Pem;

/** The identity files of `site` issued by the root CA of kz (as init and join write them). */
async function childOf(issuer: { certPem: string; privateKeyPem: string }, site: string): Promise<Pem> {
  const nodeKeys = await generateKeyPair();
  const caKeys = await generateKeyPair();
  return {
    rootCaPem: issuer.certPem,
    nodeCertChainPem: signCsr(createCsr(site, "node", nodeKeys), site, "node", issuer) + issuer.certPem,
    nodeKeyPem: nodeKeys.privateKeyPem,
    caCertChainPem: signCsr(createCsr(site, "ca", caKeys), site, "ca", issuer) + issuer.certPem,
    caKeyPem: caKeys.privateKeyPem,
  };
}

beforeAll(async () => {
  rootKeys = await generateKeyPair();
  rootCa = createRootCa("kz", rootKeys);
  const nodeKeys = await generateKeyPair();
  root = {
    rootCaPem: rootCa,
    nodeCertChainPem: signCsr(createCsr("kz", "node", nodeKeys), "kz", "node", { certPem: rootCa, privateKeyPem: rootKeys.privateKeyPem }) + rootCa,
    nodeKeyPem: nodeKeys.privateKeyPem,
    caCertChainPem: rootCa,
    caKeyPem: rootKeys.privateKeyPem,
  };
  ala = await childOf({ certPem: rootCa, privateKeyPem: rootKeys.privateKeyPem }, "kz.ala");
  const otherKeys = await generateKeyPair();
  otherTree = await childOf({ certPem: createRootCa("kz", otherKeys), privateKeyPem: otherKeys.privateKeyPem }, "kz.ala");
});

function refusal(pem: Pem, site = "kz.ala"): string {
  try {
    checkIdentity(pem, site, FILES);
  } catch (error) {
    expect(error).toBeInstanceOf(VmtreeError);
    expect((error as VmtreeError).code).toBe("failed_precondition");
    return (error as VmtreeError).rawMessage;
  }
  throw new Error("accepted");
}

describe("checkIdentity", () => {
  it("accepts a root's and a child's identity", () => {
    expect(() => checkIdentity(root, "kz", FILES)).not.toThrow();
    expect(() => checkIdentity(ala, "kz.ala", FILES)).not.toThrow();
  });

  it("refuses a node key that is not a key", () => {
    expect(refusal({ ...ala, nodeKeyPem: "garbage\n" })).toMatch(/^\/data\/ala\/tls\/node\.key is not a PEM private key \(.+\); restore \/data\/ala from its backup/);
  });

  it("refuses a node key that does not match the node certificate (ca.key copied over node.key)", () => {
    expect(refusal({ ...ala, nodeKeyPem: ala.caKeyPem })).toBe(`${FILES.nodeKey} is not the key of the certificate in ${FILES.nodeCert}; ${REMEDY}`);
  });

  it("refuses a CA key that does not match the CA certificate", () => {
    expect(refusal({ ...ala, caKeyPem: ala.nodeKeyPem })).toBe(`${FILES.caKey} is not the key of the certificate in ${FILES.caCert}; ${REMEDY}`);
  });

  it("refuses a truncated node certificate", () => {
    const chain = ala.nodeCertChainPem;
    expect(refusal({ ...ala, nodeCertChainPem: chain.slice(0, chain.length - 200) })).toBe(`${FILES.nodeCert} is truncated (a certificate has no END line); ${REMEDY}`);
    expect(refusal({ ...ala, nodeCertChainPem: chain.slice(0, 300) })).toBe(`${FILES.nodeCert} is truncated (a certificate has no END line); ${REMEDY}`);
    expect(refusal({ ...ala, nodeCertChainPem: chain.slice(0, chain.indexOf("-----END CERTIFICATE-----") + 26) })).toBe(
      `${FILES.nodeCert} does not chain to the root CA in ${FILES.rootCa}; ${REMEDY}`,
    );
  });

  it("refuses a certificate whose body is damaged", () => {
    const lines = ala.nodeCertChainPem.split("\n");
    lines[1] = "A".repeat(lines[1]!.trimEnd().length);
    const damaged = lines.join("\n");
    expect(refusal({ ...ala, nodeCertChainPem: damaged })).toMatch(/^\/data\/ala\/tls\/node\.pem certificate 1 cannot be parsed \(.+\); restore/);
  });

  it("refuses a certificate of another site than node.json", () => {
    expect(refusal(ala, "kz.ala.metro-01")).toBe(`${FILES.nodeCert} is the certificate of "kz.ala", but ${FILES.config} names site kz.ala.metro-01; ${REMEDY}`);
  });

  it("refuses node.pem and ca.pem swapped", () => {
    expect(refusal({ ...ala, nodeCertChainPem: ala.caCertChainPem })).toBe(`${FILES.nodeCert} is the certificate of "kz.ala CA", but ${FILES.config} names site kz.ala; ${REMEDY}`);
  });

  it("refuses certificates of another tree", () => {
    expect(refusal({ ...otherTree, rootCaPem: rootCa })).toBe(`${FILES.nodeCert} does not chain to the root CA in ${FILES.rootCa}; ${REMEDY}`);
  });

  it("refuses a root CA file that holds no certificate, or not a CA", () => {
    expect(refusal({ ...ala, rootCaPem: "junk\n" })).toBe(`${FILES.rootCa} holds no PEM certificate; ${REMEDY}`);
    expect(refusal({ ...ala, rootCaPem: `${rootCa}junk\n` })).toBe(`${FILES.rootCa} holds text that is not a PEM certificate; ${REMEDY}`);
    expect(refusal({ ...ala, rootCaPem: ala.nodeCertChainPem })).toBe(`${FILES.rootCa} holds 2 certificates, expected the tree's root CA alone; ${REMEDY}`);
  });
});

describe("readIdentity", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-identity-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads a valid identity and names a missing file", async () => {
    const data = new DataDir(dir);
    await data.create();
    await writeFile(data.rootCaFile, ala.rootCaPem);
    await writeFile(data.nodeCertFile, ala.nodeCertChainPem);
    await writeFile(data.nodeKeyFile, ala.nodeKeyPem);
    await writeFile(data.caCertFile, ala.caCertChainPem);
    await writeFile(data.caKeyFile, ala.caKeyPem);
    const identity = await readIdentity(data, "kz.ala");
    expect(identity.nodeKeyPem).toBe(await readFile(data.nodeKeyFile, "utf8"));
    expect(identity.rootCaFingerprint).toMatch(/^[0-9a-f]{64}$/);
    await rm(data.caCertFile);
    const error = (await readIdentity(data, "kz.ala").catch((reason: unknown) => reason)) as VmtreeError;
    expect(error.code).toBe("failed_precondition");
    expect(error.rawMessage).toBe(`${data.caCertFile} is missing; restore ${data.root} from its backup, or enrol the node again into an empty data directory`);
  });
});
