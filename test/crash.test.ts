import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { writeInventory } from "./support/inventory-file.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, waitFor, type CameraJson, type TestNode } from "./support/tree.ts";

const CAMERAS = 20_000;

/** Site and parent with a slow link between them, so that a sync takes seconds and can be interrupted. */
async function slowPair(): Promise<{ kz: TestNode; ast: TestNode; proxy: TcpProxy }> {
  const kz = await initRoot("kz");
  await kz.serve();
  const ast = await joinChild(kz, "kz.ast");
  const [host, port] = kz.address.split(":");
  const proxy = await startTcpProxy({ target: { host: host!, port: Number(port) }, delayMs: 150 });
  await ast.serve(["--parent", proxy.address]);
  return { kz, ast, proxy };
}

const received = async (kz: TestNode) => (await kz.status()).children.find((c) => c.site === "kz.ast")?.received ?? 0;
const byId = (cameras: CameraJson[]) => new Map(cameras.map((c) => [c.camera_id, c]));

/** Asserts the parent holds exactly the site's cameras, each once. */
async function expectConverged(kz: TestNode, ast: TestNode, fps: number): Promise<void> {
  const national = await waitFor(
    () => kz.cameras("kz.ast"),
    (c) => c.length === CAMERAS && c.every((x) => x.fps === fps),
    60_000,
    `${CAMERAS} cameras at fps ${fps} on kz`,
  );
  expect(byId(national).size).toBe(CAMERAS);
  expect(national).toEqual(await ast.cameras());
}

describe("crash safety (kill -9)", () => {
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  it("sync - kill -9 of the child mid-sync loses nothing and resumes without a manual step", async () => {
    const pair = await slowPair();
    proxy = pair.proxy;
    const { kz, ast } = pair;
    const file = join(ast.dir, "..", "big.csv");
    await writeInventory(file, CAMERAS);
    await ast.import(file);
    const before = await waitFor(() => received(kz), (n) => n > 0, 30_000, "the first batches at kz");
    await ast.kill9();
    // What kz acknowledged is durable there: it still holds at least what it had counted.
    const held = (await kz.cameras("kz.ast")).length;
    expect(held).toBeGreaterThanOrEqual(before);
    expect(held).toBeLessThan(CAMERAS);

    await ast.serve(["--parent", proxy.address]);
    await expectConverged(kz, ast, 25);
    // Resumed from the checkpoint: the restarted child sent only what kz lacked.
    const sent = (await ast.status()).parent!.sent;
    expect(sent).toBe(CAMERAS - held);
  }, 150_000);

  it("sync - kill -9 of the parent mid-sync loses nothing acknowledged and the child catches up", async () => {
    const pair = await slowPair();
    proxy = pair.proxy;
    const { kz, ast } = pair;
    const file = join(ast.dir, "..", "big.csv");
    await writeInventory(file, CAMERAS);
    await ast.import(file);
    await expectConverged(kz, ast, 25);

    await writeInventory(file, CAMERAS, { fps: 30 });
    expect(await ast.import(file)).toContain(`0 added, ${CAMERAS} changed, 0 removed`);
    await waitFor(() => received(kz), (n) => n > CAMERAS, 30_000, "the second version to start arriving");
    await kz.kill9();
    await kz.serve();
    expect(kz.address).toBe(pair.kz.address);
    await expectConverged(kz, ast, 30);
    const status = await waitFor(() => ast.status(), (s) => s.parent?.pending === 0 && s.parent.state === "connected", 20_000, "idle");
    expect(status.parent!.lastError).toBeNull();
  }, 200_000);
});
