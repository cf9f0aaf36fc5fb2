import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { killAll, removeTempDirs, runCli } from "./support/processes.ts";
import { initRoot, joinChild, perSite, waitFor, type TestNode } from "./support/tree.ts";

const METRO = new URL("../examples/inventory/kz.ala.metro-01.csv", import.meta.url).pathname;
const SITE = "kz.ala.metro-01";

/** The refusal of a site whose store is gone, as `vmtree` prints it. */
function refusal(site: TestNode): string {
  return (
    `vmtree: [failed_precondition] the store in ${join(site.dir, "db")} holds no data of ${SITE} (was it deleted or replaced?); ` +
    "its changes could no longer be told apart from the old ones: enrol the site again with a new invitation " +
    "(vmtree invite on kz.ala, then vmtree join into an empty data directory) to start a new epoch"
  );
}

/** `serve` and an offline `cameras list` both refuse the site, and serve never listens. */
async function expectRefused(site: TestNode): Promise<void> {
  const served = await runCli(["serve", "--data", site.dir], { timeoutMs: 20_000 });
  expect(served.code).toBe(1);
  expect(served.stdout).toBe("");
  expect(served.stderr.trim()).toBe(refusal(site));
  const listed = await site.cli(["cameras", "list", "--json"]);
  expect(listed.code).toBe(1);
  expect(listed.stdout).toBe("");
  expect(listed.stderr.trim()).toBe(refusal(site));
}

describe("store identity", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("store - a deleted store, or one that lost CURRENT, is refused; re-enrolment starts a new epoch", async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const ala = await joinChild(kz, "kz.ala");
    await ala.serve();
    const site = await joinChild(ala, SITE);
    await site.serve();
    await site.import(METRO);
    await waitFor(() => kz.cameras(), (c) => c.length === 40, 20_000, "40 cameras at kz");
    await site.stop();

    // The whole store deleted.
    const saved = join(site.dir, "..", "saved-db");
    await cp(join(site.dir, "db"), saved, { recursive: true });
    await rm(join(site.dir, "db"), { recursive: true, force: true });
    await expectRefused(site);

    // Put back, the store is served again; then only its CURRENT file is deleted.
    await rm(join(site.dir, "db"), { recursive: true, force: true });
    await cp(saved, join(site.dir, "db"), { recursive: true });
    expect((await site.cameras()).length).toBe(40);
    await rm(join(site.dir, "db", "CURRENT"));
    await expectRefused(site);

    // The way out: a new enrolment into an empty directory, a new epoch, and its changes reach the root.
    await rm(site.dir, { recursive: true, force: true });
    const again = await joinChild(ala, SITE);
    expect((await again.status()).epoch).toBe(2);
    const lines = (await readFile(METRO, "utf8")).split("\n").slice(0, 4).join("\n").concat("\n");
    const smaller = join(again.dir, "..", "metro-small.csv");
    await writeFile(smaller, lines);
    await again.import(smaller);
    await again.serve();
    const national = await waitFor(() => kz.cameras(), (c) => c.length === 3, 20_000, "the new epoch's 3 cameras at kz");
    expect(perSite(national)).toEqual({ [SITE]: 3 });
    expect(national.map((c) => c.camera_id)).toEqual(["metro-01-cam-001", "metro-01-cam-002", "metro-01-cam-003"]);
    expect((await ala.status()).children).toMatchObject([{ site: SITE, epoch: 2, state: "connected" }]);
    // About thirty CLI processes in a row: minutes, not seconds, on a loaded two-core machine.
  }, 180_000);
});
