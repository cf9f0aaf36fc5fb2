import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJoinToken, encodeJoinToken, type JoinToken } from "../src/pki/join-token.ts";
import { helloStatus } from "./support/direct-client.ts";
import { killAll, makeTempDir, removeTempDirs, runCli } from "./support/processes.ts";
import { initRoot, joinChild, ok, type TestNode } from "./support/tree.ts";

const decode = (token: string): JoinToken => {
  const decoded = decodeJoinToken(token);
  if (!decoded.ok) throw decoded.error;
  return decoded.value;
};

describe("enrolment (init, invite, join) and link admission", () => {
  let base: string;
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;

  beforeAll(async () => {
    base = await makeTempDir("vmtree-enrol-");
    kz = await initRoot("kz", base);
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  /** Runs `join` into a fresh dir and asserts it failed with exit 1 and wrote no node. */
  async function refusedJoin(token: string, dirName: string): Promise<string> {
    const dir = join(base, dirName);
    const result = await runCli(["join", "--data", dir, "--token", token, "--listen", "127.0.0.1:0"]);
    expect(result.code).toBe(1);
    expect(existsSync(join(dir, "node.json"))).toBe(false);
    expect(existsSync(join(dir, "tls", "node.pem"))).toBe(false);
    return result.stderr;
  }

  it("invite - prints the join token and nothing else on stdout", async () => {
    const result = await runCli(["invite", "--data", kz.dir, "--site", "kz.ast"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^vmtree1\.[A-Za-z0-9_-]+\n$/);
    const token = decode(result.stdout);
    expect(token).toMatchObject({ site: "kz.ast", address: kz.address });
    expect(token.expiresMs - Date.now()).toBeGreaterThan(24 * 3600_000 - 60_000);
  });

  it("join - writes owner-only keys and a certificate naming the site", async () => {
    expect(statSync(join(metro.dir, "tls", "node.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(metro.dir, "tls", "ca.key")).mode & 0o777).toBe(0o600);
    expect(statSync(metro.dir).mode & 0o777).toBe(0o700);
    const status = await ala.status();
    expect(status.children).toMatchObject([{ site: "kz.ala.metro-01", epoch: 1 }]);
  });

  it("join - a used token is refused and writes no certificate", async () => {
    const token = await kz.invite("kz.ast");
    ok(await runCli(["join", "--data", join(base, "ast-1"), "--token", token]));
    expect(await refusedJoin(token, "ast-2")).toContain("the token was already used");
  });

  it("join - an expired token is refused, also when its expiry field is forged", async () => {
    const token = await kz.invite("kz.exp", "1s");
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(await refusedJoin(token, "exp-1")).toContain("the join token expired");
    // The parent's own record decides, not the time written in the token.
    const forged = encodeJoinToken({ ...decode(token), expiresMs: Date.now() + 3600_000 });
    expect(await refusedJoin(forged, "exp-2")).toContain("the token expired at");
  });

  it("join - a token not issued by this parent is refused", async () => {
    const foreign = encodeJoinToken({ ...decode(await kz.invite("kz.f")), secret: "A".repeat(43) });
    expect(await refusedJoin(foreign, "foreign")).toContain("the token is not known here");
  });

  it("join - a token used for another site id is refused", async () => {
    const token = decode(await kz.invite("kz.bound"));
    expect(await refusedJoin(encodeJoinToken({ ...token, site: "kz.other" }), "other")).toContain("the token is bound to kz.bound");
  });

  it("join - a parent whose CA does not match the pinned fingerprint is refused before the secret is sent", async () => {
    const token = decode(await kz.invite("kz.pin"));
    const stderr = await refusedJoin(encodeJoinToken({ ...token, caFingerprint: "0".repeat(64) }), "pin");
    expect(stderr).toContain(`but the token pins ${"0".repeat(64)}; not joining`);
    // The real token is still unused: the pinned check failed before the secret left the child.
    ok(await runCli(["join", "--data", join(base, "pin-ok"), "--token", encodeJoinToken(token)]));
  });

  /** The child ids `kz` has enrolled. */
  async function childrenOfKz(): Promise<string[]> {
    return (await kz.status()).children.map((child) => child.site);
  }

  it("join - a --data that is a regular file is refused before the parent is contacted; the token stays usable", async () => {
    const token = await kz.invite("kz.file");
    const file = join(base, "a-regular-file");
    await writeFile(file, "keep me\n");
    const result = await runCli(["join", "--data", file, "--token", token]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`vmtree: [failed_precondition] --data ${file} is a file, not a directory; name an empty or absent directory\n`);
    expect(await readFile(file, "utf8")).toBe("keep me\n");
    expect(await childrenOfKz()).not.toContain("kz.file");
    ok(await runCli(["join", "--data", join(base, "file-ok"), "--token", token]));
    expect(await childrenOfKz()).toContain("kz.file");
  });

  it("join - a --data that is not empty is refused and left as it was; the token stays usable", async () => {
    const token = await kz.invite("kz.full");
    const dir = join(base, "full");
    await mkdir(dir);
    await writeFile(join(dir, "notes.txt"), "x");
    const result = await runCli(["join", "--data", dir, "--token", token]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`vmtree: [failed_precondition] --data ${dir} is not empty (it holds notes.txt); name an empty or absent directory\n`);
    expect(readdirSync(dir)).toEqual(["notes.txt"]);
    expect(await childrenOfKz()).not.toContain("kz.full");
    ok(await runCli(["join", "--data", join(base, "full-ok"), "--token", token]));
  });

  it("join - a bad --advertise is a usage error naming --advertise, before any key or call; the token stays usable", async () => {
    const token = await kz.invite("kz.adv");
    const dir = join(base, "adv");
    for (const [value, message] of [
      ["garbage", "expected --advertise like 127.0.0.1:7443, got `garbage`"],
      ["127.0.0.1:0", "--advertise needs a real port, got `127.0.0.1:0`"],
    ] as const) {
      const result = await runCli(["join", "--data", dir, "--token", token, "--advertise", value]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`vmtree: ${message}\nRun \`vmtree --help\` for usage.\n`);
      expect(existsSync(dir)).toBe(false);
    }
    expect(await childrenOfKz()).not.toContain("kz.adv");
    ok(await runCli(["join", "--data", dir, "--token", token, "--advertise", "127.0.0.1:7443"]));
    expect(JSON.parse(await readFile(join(dir, "node.json"), "utf8"))).toMatchObject({ site: "kz.adv", advertise: "127.0.0.1:7443" });
  });

  it("init - a bad --advertise is a usage error naming --advertise and writes nothing", async () => {
    const dir = join(base, "init-adv");
    const result = await runCli(["init", "--data", dir, "--site", "kz", "--listen", "127.0.0.1:0", "--advertise", "garbage"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("vmtree: expected --advertise like 127.0.0.1:7443, got `garbage`\nRun `vmtree --help` for usage.\n");
    expect(existsSync(dir)).toBe(false);
    const file = join(base, "init-file");
    await writeFile(file, "");
    const onFile = await runCli(["init", "--data", file, "--site", "kz", "--listen", "127.0.0.1:0"]);
    expect(onFile.code).toBe(1);
    expect(onFile.stderr).toBe(`vmtree: [failed_precondition] --data ${file} is a file, not a directory; name an empty or absent directory\n`);
  });

  it("serve - a bad --parent is a usage error naming --parent", async () => {
    const result = await runCli(["serve", "--data", kz.dir, "--parent", "bogus"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("vmtree: expected --parent like 127.0.0.1:7443, got `bogus`\nRun `vmtree --help` for usage.\n");
  });

  it("site ids - invalid ids are refused with the rule they break", async () => {
    const init = await runCli(["init", "--data", join(base, "bad"), "--site", "KZ", "--listen", "127.0.0.1:0"]);
    expect(init.code).toBe(2);
    expect(init.stderr).toContain(
      `invalid site id "KZ": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit`,
    );
    const deep = await runCli(["invite", "--data", kz.dir, "--site", "kz.a.b.c.d.e.f.g.h"]);
    expect(deep.code).toBe(2);
    expect(deep.stderr).toContain("it has 9 segments, at most 8 are allowed");
    const grandchild = await runCli(["invite", "--data", kz.dir, "--site", "kz.ala.x"]);
    expect(grandchild.code).toBe(1);
    expect(grandchild.stderr).toContain("site kz.ala.x is not a direct child of kz; a child id is kz.NAME");
    const usage = await runCli(["invite", "--data", kz.dir, "--site", "kz.x", "--ttl", "forever"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("expected --ttl like 24h (s, m, h or d), got `forever`");
  });

  it("links - a certificate from another CA is refused with UNAUTHENTICATED", async () => {
    const other = await initRoot("kz", await makeTempDir("vmtree-other-"));
    expect(await helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: other.dir })).toBe(status.UNAUTHENTICATED);
    expect(await helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir })).toBe(status.UNAUTHENTICATED);
  });

  it("links - a site of the tree that is not an enrolled child is refused with PERMISSION_DENIED", async () => {
    // A grandchild holds a valid certificate of this tree but is not kz's child.
    expect(await helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: metro.dir })).toBe(status.PERMISSION_DENIED);
    expect(await helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ala.dir })).toBe(status.OK);
  });

  it("links - the child-only calls are refused to the parent: kz calling kz.ala's ParentService gets PERMISSION_DENIED", async () => {
    expect(await helloStatus({ address: ala.address, parentSite: "kz.ala", trustDir: kz.dir, certDir: kz.dir })).toBe(status.PERMISSION_DENIED);
  });

  it("serve - SIGTERM shuts a node down cleanly and removes its admin socket", async () => {
    await metro.serve();
    expect(existsSync(join(metro.dir, "admin.sock"))).toBe(true);
    await metro.stop();
    expect(existsSync(join(metro.dir, "admin.sock"))).toBe(false);
    expect((await metro.status()).running).toBe(false);
  });
});
