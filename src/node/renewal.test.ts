import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DataDir } from "./data-dir.ts";
import { createCsr, createRootCa, generateKeyPair, signCsr } from "../pki/certificates.ts";
import { expiredProblem, finishRenewal, renewalDueMs, retryDelayMs } from "./renewal.ts";

const DAY_MS = 86_400_000;
const NOW = Date.parse("2026-01-01T00:00:00Z");

describe("renewal timing", async () => {
  const caKeys = await generateKeyPair();
  const root = createRootCa("kz", caKeys, NOW);
  const nodeKeys = await generateKeyPair();
  const issue = (days: number) => signCsr(createCsr("kz.ala", "node", nodeKeys), "kz.ala", "node", { certPem: root, privateKeyPem: caKeys.privateKeyPem }, { now: NOW, days });

  it("renewalDueMs - is two thirds of the way from notBefore to notAfter", () => {
    const from = NOW - 5 * 60 * 1000; // backdated by 5 minutes
    expect(renewalDueMs(issue(90))).toBe(from + ((NOW + 90 * DAY_MS - from) * 2) / 3);
    expect(renewalDueMs(issue(90) + root)).toBe(renewalDueMs(issue(90)));
    // The default 90 days renew at 60 days (and the 5 minutes of backdating).
    expect(Math.round((renewalDueMs(issue(90)) - NOW) / DAY_MS)).toBe(60);
  });

  it("retryDelayMs - a twentieth of the lifetime, between 1 s and 5 minutes", () => {
    expect(retryDelayMs(issue(90))).toBe(5 * 60 * 1000);
    expect(retryDelayMs(issue(60 / 86_400))).toBe(Math.max(1_000, (60_000 + 5 * 60 * 1000) / 20));
  });

  it("expiredProblem - undefined while valid; after notAfter, the time and what to do", () => {
    const cert = issue(1);
    expect(expiredProblem(cert, "kz.ala", "kz", NOW + DAY_MS - 1)).toBeUndefined();
    expect(expiredProblem(cert, "kz.ala", "kz", NOW + DAY_MS)).toBe(
      "the node certificate of kz.ala expired at 2026-01-02T00:00:00.000Z (it was not renewed in time, the node was stopped or could not reach kz); " +
        "kz refuses an expired certificate and it can no longer be renewed: enrol kz.ala again with a new invitation (vmtree invite --site kz.ala on kz, then vmtree join into an empty data directory)",
    );
  });
});

describe("finishRenewal", () => {
  const setup = async (files: Record<string, string>) => {
    const root = await mkdtemp(join(tmpdir(), "vmtree-renewal-"));
    const dir = new DataDir(root);
    await dir.create();
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir.tlsDir, name), text);
    return dir;
  };
  const contents = async (dir: DataDir) => Object.fromEntries(await Promise.all((await readdir(dir.tlsDir)).sort().map(async (name) => [name, await readFile(join(dir.tlsDir, name), "utf8")])));

  it("finishRenewal - completes both renames once the renewed certificate was written", async () => {
    const dir = await setup({ "node.key": "old key", "node.pem": "old cert", "node.key.renewed": "new key", "node.pem.renewed": "new cert" });
    await finishRenewal(dir);
    expect(await contents(dir)).toEqual({ "node.key": "new key", "node.pem": "new cert" });
    await rm(dir.root, { recursive: true });
  });

  it("finishRenewal - completes the certificate's rename after the key's", async () => {
    const dir = await setup({ "node.key": "new key", "node.pem": "old cert", "node.pem.renewed": "new cert" });
    await finishRenewal(dir);
    expect(await contents(dir)).toEqual({ "node.key": "new key", "node.pem": "new cert" });
    await rm(dir.root, { recursive: true });
  });

  it("finishRenewal - drops a lone renewed key: the old pair is intact", async () => {
    const dir = await setup({ "node.key": "old key", "node.pem": "old cert", "node.key.renewed": "new key" });
    await finishRenewal(dir);
    expect(await contents(dir)).toEqual({ "node.key": "old key", "node.pem": "old cert" });
    await finishRenewal(dir); // nothing to do
    expect(await contents(dir)).toEqual({ "node.key": "old key", "node.pem": "old cert" });
    await rm(dir.root, { recursive: true });
  });
});
