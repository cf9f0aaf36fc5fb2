import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, makeTempDir, removeTempDirs, runCli } from "./support/processes.ts";
import { initRoot, joinChild, TestNode } from "./support/tree.ts";

/**
 * Each case damages one file of a copy of a stopped, enrolled node's data directory.
 * `serve` must exit 1 with an error naming the file, the field or fault, and what to
 * do, and never print "serving on"; an offline command refuses it the same way.
 */
describe("a damaged data directory is refused before anything is served", () => {
  let ala: TestNode;
  let scratch: string;
  let copies = 0;

  beforeAll(async () => {
    scratch = await makeTempDir("vmtree-damaged-");
    const kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    await kz.stop();
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  /** A copy of kz.ala's data directory with `damage` applied; resolves with its path. */
  async function damaged(damage: (dir: string) => Promise<void>): Promise<string> {
    const dir = join(scratch, `ala-${++copies}`);
    await cp(ala.dir, dir, { recursive: true });
    await damage(dir);
    return dir;
  }

  async function serveFails(dir: string): Promise<string> {
    const result = await runCli(["serve", "--data", dir], { timeoutMs: 20_000 });
    expect(result.stdout).not.toContain("serving on");
    expect(result.code).toBe(1);
    return result.stderr.trim();
  }

  const remedy = (dir: string) => `restore ${dir} from its backup, or enrol the node again into an empty data directory`;
  const editConfig = (patch: Record<string, unknown>) => async (dir: string) => {
    const config = JSON.parse(await readFile(join(dir, "node.json"), "utf8")) as Record<string, unknown>;
    await writeFile(join(dir, "node.json"), JSON.stringify({ ...config, ...patch }));
  };

  it("refuses garbage in tls/node.key", async () => {
    const dir = await damaged((d) => writeFile(join(d, "tls", "node.key"), "garbage\n"));
    expect(await serveFails(dir)).toMatch(new RegExp(`^vmtree: \\[failed_precondition\\] ${dir}/tls/node\\.key is not a PEM private key \\(.+\\); restore ${dir} from its backup`));
  });

  it("refuses ca.key copied over node.key", async () => {
    const dir = await damaged((d) => cp(join(d, "tls", "ca.key"), join(d, "tls", "node.key")));
    const message = `vmtree: [failed_precondition] ${dir}/tls/node.key is not the key of the certificate in ${dir}/tls/node.pem; ${remedy(dir)}`;
    expect(await serveFails(dir)).toBe(message);
    const listed = await runCli(["cameras", "list", "--data", dir]);
    expect(listed.code).toBe(1);
    expect(listed.stderr.trim()).toBe(message);
  });

  it("refuses a truncated tls/node.pem", async () => {
    const dir = await damaged(async (d) => {
      const text = await readFile(join(d, "tls", "node.pem"), "utf8");
      await writeFile(join(d, "tls", "node.pem"), text.slice(0, text.length - 300));
    });
    expect(await serveFails(dir)).toBe(`vmtree: [failed_precondition] ${dir}/tls/node.pem is truncated (a certificate has no END line); ${remedy(dir)}`);
  });

  it("refuses junk in tls/root-ca.pem and a missing tls file", async () => {
    const junk = await damaged((d) => writeFile(join(d, "tls", "root-ca.pem"), "junk\n"));
    expect(await serveFails(junk)).toBe(`vmtree: [failed_precondition] ${junk}/tls/root-ca.pem holds no PEM certificate; ${remedy(junk)}`);
    const missing = await damaged((d) => rm(join(d, "tls", "ca.pem")));
    expect(await serveFails(missing)).toBe(`vmtree: [failed_precondition] ${missing}/tls/ca.pem is missing; ${remedy(missing)}`);
  });

  it("refuses a node.json with a bad epoch, an empty parent, another site, null or no JSON", async () => {
    const epoch = await damaged(editConfig({ epoch: "x" }));
    expect(await serveFails(epoch)).toBe(`vmtree: [failed_precondition] ${epoch}/node.json field epoch: expected a positive integer, got "x"; ${remedy(epoch)}`);
    const parent = await damaged(editConfig({ parent: {} }));
    expect(await serveFails(parent)).toBe(
      `vmtree: [failed_precondition] ${parent}/node.json field parent.site: expected a site id like kz.ala, got nothing (the field is missing); ${remedy(parent)}`,
    );
    const site = await damaged(editConfig({ site: "kz.ast" }));
    expect(await serveFails(site)).toBe(
      `vmtree: [failed_precondition] ${site}/tls/node.pem is the certificate of "kz.ala", but ${site}/node.json names site kz.ast; ${remedy(site)}`,
    );
    const empty = await damaged((d) => writeFile(join(d, "node.json"), "null\n"));
    expect(await serveFails(empty)).toBe(
      `vmtree: [failed_precondition] ${empty}/node.json holds null, expected an object with the fields site, epoch, storeId and listen; ${remedy(empty)}`,
    );
    const text = await damaged((d) => writeFile(join(d, "node.json"), "{site: kz}\n"));
    expect(await serveFails(text)).toMatch(new RegExp(`^vmtree: \\[failed_precondition\\] ${text}/node\\.json is not valid JSON \\(Expected property name.*\\); restore ${text} from its backup`));
  });

  it("still serves the undamaged directory", async () => {
    const dir = await damaged(async () => undefined);
    const copy = new TestNode("kz.ala", dir);
    await copy.serve();
    // Its parent is stopped; SIGKILL spares the test the uplink's slow shutdown.
    await copy.kill9();
  });
});
