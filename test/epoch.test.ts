import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { helloStatus } from "./support/direct-client.ts";
import { killAll, removeTempDirs, runCli } from "./support/processes.ts";
import { initRoot, joinChild, ok, perSite, waitFor } from "./support/tree.ts";

const ROAD = new URL("../examples/inventory/kz.shy.road-a2.csv", import.meta.url).pathname;

describe("epochs", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("epoch - a wiped and re-enrolled site starts a new epoch and the parent resyncs it", async () => {
    const kz = await initRoot("kz");
    await kz.serve();
    const shy = await joinChild(kz, "kz.shy");
    await shy.serve();
    const road = await joinChild(shy, "kz.shy.road-a2");
    await road.serve();
    await road.import(ROAD);
    await waitFor(() => kz.cameras(), (c) => c.length === 18, 20_000, "18 cameras at kz");

    // The site's disk is lost: wipe it, keep a copy of its old identity to try it later.
    await road.kill9();
    const oldCert = join(road.dir, "..", "old-road-cert");
    await cp(join(road.dir, "tls"), join(oldCert, "tls"), { recursive: true });
    await rm(road.dir, { recursive: true, force: true });

    const again = await joinChild(shy, "kz.shy.road-a2");
    expect((await again.status()).epoch).toBe(2);
    // Before it has imported anything, the new incarnation already replaces the old one up to the root.
    await again.serve();
    await waitFor(() => kz.cameras(), (c) => c.length === 0, 20_000, "kz to drop the old epoch");
    await again.stop();
    // Only the first five cameras exist after the rebuild.
    const lines = (await readFile(ROAD, "utf8")).split("\r\n").slice(0, 6).join("\r\n").concat("\r\n");
    const smaller = join(again.dir, "..", "road-small.csv");
    await writeFile(smaller, lines);
    await again.import(smaller);
    await again.serve();

    const national = await waitFor(() => kz.cameras(), (c) => c.length === 5, 20_000, "the new epoch's cameras at kz");
    expect(perSite(national)).toEqual({ "kz.shy.road-a2": 5 });
    expect(national.map((c) => c.camera_id)).toEqual(["road-a2-cam-001", "road-a2-cam-002", "road-a2-cam-003", "road-a2-cam-004", "road-a2-cam-005"]);
    expect((await shy.status()).children).toMatchObject([{ site: "kz.shy.road-a2", epoch: 2, state: "connected" }]);
    // The certificate of the lost incarnation no longer opens a link.
    expect(await helloStatus({ address: shy.address, parentSite: "kz.shy", trustDir: shy.dir, certDir: oldCert })).toBe(status.PERMISSION_DENIED);
    ok(await runCli(["status", "--data", again.dir]));
  });
});
