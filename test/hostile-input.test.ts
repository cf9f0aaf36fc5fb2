import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ParentServiceClient } from "../src/gen/vmtree/v1/link.ts";
import { parentClient } from "./support/direct-client.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, ok, waitFor, type TestNode } from "./support/tree.ts";

const raw = (bytes: Buffer) => bytes;
/** A protobuf message that cannot decode: field 7 with the wire type 6, which does not exist. */
const UNDECODABLE = Buffer.from("3e3d", "hex");

/** Sends `messages` (raw bytes) on a stream and half-closes; resolves with the status and the responses before it. */
function rawStream(client: ParentServiceClient, method: string, messages: Buffer[]): Promise<{ code: status; details: string; responses: number }> {
  return new Promise((resolve) => {
    let responses = 0;
    const stream = client.makeBidiStreamRequest(`/vmtree.v1.ParentService/${method}`, raw, raw, new Metadata(), { deadline: Date.now() + 5_000 });
    stream.on("data", () => (responses += 1));
    stream.on("error", () => undefined);
    stream.on("status", (s: { code: status; details: string }) => resolve({ code: s.code, details: s.details, responses }));
    for (const message of messages) stream.write(message);
    stream.end();
  });
}

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

  it("hostile peers - a child opening more calls than any child needs gets RESOURCE_EXHAUSTED, and the node serves on; cancelled calls free their places", async () => {
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
    // The twelve were cancelled: twelve new calls are held open again, none refused.
    await waitFor(() => kz.status(), (s) => s.children.find((c) => c.site === "kz.ala")?.state === "disconnected", 5_000, "the cancelled streams closed at kz");
    const again = Array.from({ length: 12 }, () => client.syncAudit());
    const refused: number[] = [];
    for (const stream of again) stream.on("error", (error: ServiceError) => refused.push(error.code));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(refused).toEqual([]);
    expect((await kz.status()).children.find((c) => c.site === "kz.ala")?.state).toBe("connected");
    for (const stream of again) stream.cancel();
  });

  // The fuzz test found that a message grpc-js failed to decode, after the node had answered
  // the one before, left the call with no status at all: the client waited for its deadline.
  it("hostile peers - a message that does not decode is refused with INVALID_ARGUMENT, also after a response", async () => {
    const policy = join(kz.dir, "..", "hostile-policy.yaml");
    await writeFile(policy, "roles:\n  operator: [view_live]\nbindings:\n  - id: ops\n    subject: user:ivanov\n    role: operator\n    scope: kz.ala\n    effect: allow\n    valid_from: 2026-12-01T00:00:00Z\n    valid_until: 2027-06-01T00:00:00Z\n");
    ok(await kz.cli(["policy", "apply", policy]));
    // An empty first message holds no versions: kz answers with its set and "caught up", then refuses the second.
    expect(await rawStream(client, "SyncPolicies", [Buffer.alloc(0), UNDECODABLE])).toMatchObject({ code: status.INVALID_ARGUMENT, responses: 2 });
    const inventory = await rawStream(client, "SyncInventory", [Buffer.alloc(0), UNDECODABLE]);
    expect(inventory).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/^a SyncInventory message does not decode: /), responses: 1 });
    const hello = await new Promise<ServiceError | null>((resolve) =>
      client.makeUnaryRequest("/vmtree.v1.ParentService/Hello", raw, raw, UNDECODABLE, new Metadata(), { deadline: Date.now() + 5_000 }, (error) => resolve(error)),
    );
    expect(hello?.code).toBe(status.INVALID_ARGUMENT);
    expect(hello?.details).toMatch(/^a Hello request does not decode: /);
    expect((await kz.status()).site).toBe("kz");
  });
});
