import { cp, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, perSite, waitFor } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/inventory/", import.meta.url).pathname;
const METRO = join(EXAMPLES, "kz.ala.metro-01.csv");
const ROAD = join(EXAMPLES, "kz.shy.road-a2.csv");

const refused = (reaches: number) =>
  `kz.a holds changes of kz.a.s up to 40 but this store only reaches ${reaches}: the data directory was restored from an older backup or rolled back; ` +
  "its new changes would be lost. Enrol the site again with a new invitation (vmtree invite on kz.a, then vmtree join into an empty data directory) " +
  "to start a new epoch";
const REFUSED = refused(0);

describe("a site restored from an older backup", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("restore - never syncs a rolled-back store, says so in status, and a re-enrolment syncs again", async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const region = await joinChild(kz, "kz.a");
    await region.serve();
    const site = await joinChild(region, "kz.a.s");
    await site.serve();
    await waitFor(() => site.status(), (s) => s.parent?.state === "connected", 20_000, "the site to connect");
    await site.stop();
    const backup = join(site.dir, "..", "backup");
    await cp(site.dir, backup, { recursive: true, filter: (source) => basename(source) !== "admin.sock" });

    await site.serve();
    await site.import(METRO);
    await waitFor(() => region.cameras(), (c) => c.length === 40, 20_000, "40 cameras at kz.a");
    await waitFor(() => kz.cameras(), (c) => c.length === 40, 20_000, "40 cameras at kz");
    await site.stop();
    const metroIds = (await region.cameras()).map((c) => c.camera_id);
    expect(metroIds).toHaveLength(40);
    expect(metroIds.every((id) => id.startsWith("metro-01-cam-"))).toBe(true);

    // The disk is restored from the backup taken before the import.
    await rm(site.dir, { recursive: true, force: true });
    await cp(backup, site.dir, { recursive: true });
    await site.serve();
    const status = await waitFor(() => site.status(), (s) => s.parent?.lastError === REFUSED, 20_000, "the refusal in status");
    expect(status.parent).toMatchObject({ site: "kz.a", state: "disconnected", lastError: REFUSED });
    await site.import(ROAD);
    expect(await site.cameras()).toHaveLength(18);
    // Later hellos (the normal backoff) still refuse, now with the store's new position, and never send.
    await waitFor(() => site.status(), (s) => s.parent?.lastError === refused(18), 20_000, "the refusal after the import");
    expect((await site.status()).parent).toMatchObject({ state: "disconnected", sent: 0, auditSent: 0, pending: 18 });
    expect(site.process!.stderr().match(/ERROR \[[^\]]*\] parent link refused/g)).toHaveLength(1);
    const refusals = await site.auditList(["--action", "link.refused"]);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ origin: "kz.a.s", actor: "node", target: "kz.a", result: "refused", details: { reason: REFUSED } });
    expect((await region.status()).children).toMatchObject([{ site: "kz.a.s", epoch: 1, received: 40 }]);

    // Nothing was wrongly merged above: the old 40 stay, no road camera arrived, no audit fork.
    expect((await region.cameras()).map((c) => c.camera_id)).toEqual(metroIds);
    expect(perSite(await kz.cameras())).toEqual({ "kz.a.s": 40 });
    expect((await region.status()).audit.quarantined).toEqual([]);

    // A re-enrolment into an empty data directory starts a new epoch, which syncs up to the root.
    await site.stop();
    await rm(site.dir, { recursive: true, force: true });
    const again = await joinChild(region, "kz.a.s");
    expect((await again.status()).epoch).toBe(2);
    await again.import(ROAD);
    await again.serve();
    const national = await waitFor(
      () => kz.cameras(),
      (c) => c.length === 18 && c.every((camera) => camera.camera_id.startsWith("road-a2-cam-")),
      20_000,
      "the new epoch's 18 cameras at kz",
    );
    expect(perSite(national)).toEqual({ "kz.a.s": 18 });
    expect((await again.status()).parent).toMatchObject({ state: "connected", lastError: null });
  });
});
