import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeInventory } from "./support/inventory-file.ts";
import { killAll, makeTempDir, removeTempDirs, spawnNode } from "./support/processes.ts";
import { initRoot, joinChild, type TestNode } from "./support/tree.ts";

const CAMERAS = 200_000;

/**
 * SIGTERM reaches a site node while `cameras import` of a large file runs on it: what the
 * CLI reports must be what the node holds after a restart, and the node must exit as
 * soon as the import is answered.
 */
describe("SIGTERM during an import", () => {
  let base: string;
  let kz: TestNode;
  let file: string;

  beforeAll(async () => {
    base = await makeTempDir("vmtree-shutdown-");
    file = join(base, "big.csv");
    await writeInventory(file, CAMERAS);
    kz = await initRoot("kz", base);
    await kz.serve();
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  /**
   * Serves `site`, imports the big file, SIGTERMs the node as soon as the import has reached it
   * (its debug log says so; a fixed delay is too short on a loaded machine); returns both outcomes.
   */
  async function importAndStop(site: string, env: NodeJS.ProcessEnv = {}) {
    const node = await joinChild(kz, site);
    node.process = spawnNode(["serve", "--data", node.dir], { env: { ...env, VMTREE_LOG_LEVEL: "debug" } });
    await node.process.waitForLine(/serving on \S+/, 20_000);
    const serve = node.process;
    const importer = spawnNode(["cameras", "import", "--data", node.dir, file]);
    await serve.waitForLine(/\/admin\] admin call \{"method":"importCameras"/, 60_000);
    process.kill(serve.pid, "SIGTERM");
    const imported = await importer.exited;
    const answeredMs = Date.now();
    const served = await serve.exited;
    const lingeredMs = Date.now() - answeredMs;
    node.process = undefined;
    // Stopped, the node's store is read directly: this is what a restart finds.
    const held = (await node.status()).cameras.own;
    return { imported, stdout: importer.stdout(), stderr: importer.stderr(), served, lingeredMs, held };
  }

  it("lets the import in flight finish: exit 0, its counts, every camera held, a prompt exit", async () => {
    const outcome = await importAndStop("kz.s1");
    expect(outcome.imported.code).toBe(0);
    expect(outcome.stderr).toBe("");
    expect(outcome.stdout).toBe(`imported ${file}: ${CAMERAS} added, 0 changed, 0 removed, 0 unchanged\n`);
    expect(outcome.held).toBe(CAMERAS);
    expect(outcome.served.code).toBe(0);
    expect(outcome.lingeredMs).toBeLessThan(5_000);
  }, 120_000);

  it("past the drain bound an uncommitted import is abandoned: exit 1, and nothing held", async () => {
    const outcome = await importAndStop("kz.s2", { VMTREE_ADMIN_DRAIN_MS: "0" });
    expect(outcome.imported.code).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toBe("vmtree: [unavailable] the node is stopping; the import was not applied; run it again once the node is back\n");
    expect(outcome.held).toBe(0);
    expect(outcome.served.code).toBe(0);
    expect(outcome.lingeredMs).toBeLessThan(5_000);
  }, 120_000);
});

describe("SIGTERM while the parent is down", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("serve - stops at once while its uplink is still trying to reach the parent", async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const ast = await joinChild(kz, "kz.ast");
    await kz.stop();
    await ast.serve();
    // Let the uplink start its attempts to reach the stopped parent.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const started = Date.now();
    await ast.stop();
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
