import net from "node:net";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ParentServiceClient } from "../src/gen/vmtree/v1/link.ts";
import { parentClient } from "./support/direct-client.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, type TestNode } from "./support/tree.ts";

// A served root kz and its enrolled child kz.ala, not served: the test holds kz.ala's key.
describe("hostile peers", () => {
  let kz: TestNode;
  let ala: TestNode;
  let client: ParentServiceClient;

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    client = await parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ala.dir });
  });

  afterAll(async () => {
    client?.close();
    await killAll();
    await removeTempDirs();
  });

  it("hostile peers - a connection that never completes its TLS handshake is dropped within 10 s, and the node serves on", async () => {
    const [host, port] = kz.address.split(":");
    const socket = net.connect(Number(port), host);
    const opened = Date.now();
    const closed = await new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now() - opened)));
    expect(closed).toBeGreaterThan(9_000);
    expect(closed).toBeLessThan(12_000);
    expect((await kz.status()).site).toBe("kz");
  }, 20_000);

  it("hostile peers - a child announcing another epoch for itself is refused with FAILED_PRECONDITION", async () => {
    const stream = client.syncInventory();
    const code = new Promise<number>((resolve) => stream.on("error", (error: ServiceError) => resolve(error.code)));
    stream.write({ batch_id: 1, changes: [], pending: 0, new_epochs: [{ origin: "kz.ala", epoch: 2, seq: 0 }] });
    expect(await code).toBe(status.FAILED_PRECONDITION);
    const refusal = (await kz.auditList(["--action", "call.refused"])).at(-1);
    expect(refusal).toMatchObject({ actor: "site:kz.ala", target: "SyncInventory", details: { code: "failed_precondition", reason: "site kz.ala announced epoch 2, enrolled epoch is 1" } });
  });

  it("hostile peers - a child opening more calls than any child needs gets RESOURCE_EXHAUSTED, and the node serves on", async () => {
    const streams = Array.from({ length: 12 }, () => client.syncAudit());
    const errors: number[] = [];
    for (const stream of streams) stream.on("error", (error: ServiceError) => errors.push(error.code));
    // The twelve are authorized and held open; none is refused.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(errors).toEqual([]);
    const extra = client.syncAudit();
    const code = await new Promise<number>((resolve) => extra.on("error", (error: ServiceError) => resolve(error.code)));
    expect(code).toBe(status.RESOURCE_EXHAUSTED);
    for (const stream of streams) stream.cancel();
    const refusals = await kz.auditList(["--action", "call.refused"]);
    expect(refusals.at(-1)).toMatchObject({ actor: "site:kz.ala", target: "SyncAudit", result: "refused", details: { code: "resource_exhausted" } });
    expect((await kz.status()).site).toBe("kz");
  });
});
