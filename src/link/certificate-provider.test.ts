import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DataDir } from "../node/data-dir.ts";
import { createCsr, createRootCa, generateKeyPair, signCsr } from "../pki/certificates.ts";
import { NodeCertificateProvider } from "./certificate-provider.ts";

describe("NodeCertificateProvider", async () => {
  const caKeys = await generateKeyPair();
  const root = createRootCa("kz", caKeys);
  const issue = async () => {
    const keys = await generateKeyPair();
    return { key: keys.privateKeyPem, cert: signCsr(createCsr("kz", "node", keys), "kz", "node", { certPem: root, privateKeyPem: caKeys.privateKeyPem }) };
  };

  it("NodeCertificateProvider - passes a renewed pair on at reload, and ignores a key that does not match its certificate", async () => {
    const dir = new DataDir(await mkdtemp(join(tmpdir(), "vmtree-provider-")));
    await dir.create();
    const first = await issue();
    const second = await issue();
    await writeFile(dir.rootCaFile, root);
    await writeFile(dir.nodeKeyFile, first.key);
    await writeFile(dir.nodeCertFile, first.cert);
    const provider = new NodeCertificateProvider(dir);
    const seen: string[] = [];
    const listener = (update: { certificate: Buffer } | null) => seen.push(update ? update.certificate.toString() : "none");
    provider.addIdentityCertificateListener(listener);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(seen).toEqual([first.cert]);
    // Between the two renames of a renewal: the new key, the old certificate.
    await writeFile(dir.nodeKeyFile, second.key);
    await provider.reload();
    expect(seen).toEqual([first.cert]);
    await writeFile(dir.nodeCertFile, second.cert);
    await provider.reload();
    await provider.reload(); // unchanged: not passed on again
    expect(seen).toEqual([first.cert, second.cert]);
    provider.removeIdentityCertificateListener(listener);
    await rm(dir.root, { recursive: true });
  });
});
