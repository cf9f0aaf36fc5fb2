import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { status, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fragment, UploadFragmentRequest, UploadFragmentResponse } from "../src/gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../src/gen/vmtree/v1/link.ts";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { decodeJoinToken } from "../src/pki/join-token.ts";
import { fragmentIdFor } from "../src/transfer/fragment-meta.ts";
import { MAX_PARTIALS_PER_CHILD } from "../src/transfer/upload-receiver.ts";
import { parentClient } from "./support/direct-client.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, ok, waitFor, type TestNode } from "./support/tree.ts";

type Upload = ClientDuplexStream<UploadFragmentRequest, UploadFragmentResponse>;

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
let camera = 0;

/** A well-formed description of `data` recorded at `site`, an incident (sent up unasked); `override` changes fields after the id is computed. */
function fragmentOf(site: string, data: Buffer, override: Partial<Fragment> = {}, sizeOverride?: number): Fragment {
  camera += 1;
  const fragment: Fragment = {
    id: "", site, camera_id: `cam-${camera}`, start_ms: 1_790_000_000_000 + camera, end_ms: 1_790_000_060_000 + camera,
    size: sizeOverride ?? data.byteLength, sha256: sha256(data), incident: true, file_name: "a.mp4", added_ms: 1_790_000_100_000,
  };
  fragment.id = fragmentIdFor(fragment);
  return { ...fragment, ...override };
}

/** A recording of `camera` at `site`, not an incident: it goes up only to answer a request. */
function recordingOf(site: string, camera: string, data: Buffer): Fragment {
  const fragment = { ...fragmentOf(site, data), camera_id: camera, incident: false };
  return { ...fragment, id: fragmentIdFor(fragment) };
}

const chunk = (offset: number, data: Buffer): UploadFragmentRequest => ({ message: { $case: "chunk", value: { offset, data, crc32: crc32(data) } } });
const start = (fragment: Fragment, requestId = "", priority = "requested"): UploadFragmentRequest => ({ message: { $case: "start", value: { fragment, priority, request_id: requestId } } });

/** Sends `messages` one after another (each after the previous answer), then half-closes; resolves with the answers and the status. */
function upload(client: ParentServiceClient, messages: UploadFragmentRequest[]): Promise<{ code: status; details: string; committed: number[] }> {
  return new Promise((resolve) => {
    const call: Upload = client.uploadFragment({ deadline: Date.now() + 20_000 });
    const committed: number[] = [];
    let next = 0;
    const sendNext = () => {
      if (next < messages.length) call.write(messages[next++]!);
      else call.end();
    };
    call.on("data", (response: UploadFragmentResponse) => {
      committed.push(response.committed);
      sendNext();
    });
    call.on("error", () => undefined);
    call.on("status", (s: { code: status; details: string }) => resolve({ code: s.code, details: s.details, committed }));
    sendNext();
  });
}

/** Opens an upload, sends its start and resolves with the call once the parent answered it (or with the refusal). */
function opened(client: ParentServiceClient, fragment: Fragment): Promise<{ call: Upload; code?: status; details?: string }> {
  return new Promise((resolve) => {
    const call: Upload = client.uploadFragment();
    call.once("data", () => resolve({ call }));
    call.on("error", (error: ServiceError) => resolve({ call, code: error.code, details: error.details }));
    call.write(start(fragment));
  });
}

// A served root kz and two enrolled children kz.ala and kz.ast, not served: the tests hold their keys
// and speak UploadFragment / SyncCommands as a hostile child would (R-6.5, issue 5, issue 6).
describe("hostile: fragment uploads from a hostile child", () => {
  let kz: TestNode;
  let ala: TestNode;
  let ast: TestNode;
  let asAla: ParentServiceClient;
  let asAst: ParentServiceClient;
  let admin: NodeAdmin;

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    ast = await joinChild(kz, "kz.ast");
    asAla = await parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ala.dir });
    asAst = await parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ast.dir });
    admin = await connectAdmin(kz.dir);
  }, 60_000);

  afterAll(async () => {
    asAla?.close();
    asAst?.close();
    await admin?.close();
    await killAll();
    await removeTempDirs();
  });

  it("hostile - a fragment of another child's site, of the parent itself or of a sibling's subtree is refused with PERMISSION_DENIED", async () => {
    const data = randomBytes(1000);
    for (const site of ["kz.ast", "kz", "kz.ast.metro-01", "kz.alab"]) {
      const result = await upload(asAla, [start(fragmentOf(site, data)), chunk(0, data)]);
      expect([site, result.code]).toEqual([site, status.PERMISSION_DENIED]);
      expect(result.details).toMatch(/^site kz\.ala may not upload fragment f-[0-9a-f]{32} of \S+, outside its subtree$/);
    }
    expect((await admin.listFragments({ site: "" })).fragments).toEqual([]);
  }, 60_000);

  it("hostile - malformed descriptions are refused with INVALID_ARGUMENT: ids with / .. NUL or unicode, sha256 not hex, size past 64 GiB", async () => {
    const data = randomBytes(100);
    const cases: [string, Fragment][] = [
      ["id with /", fragmentOf("kz.ala", data, { id: "f-../../x" })],
      ["id ..", fragmentOf("kz.ala", data, { id: ".." })],
      ["id with NUL", fragmentOf("kz.ala", data, { id: "f-a\u0000b" })],
      ["unicode id", fragmentOf("kz.ala", data, { id: "f-ä" })],
      ["sha256 upper case", fragmentOf("kz.ala", data, { sha256: sha256(data).toUpperCase() })],
      ["sha256 not hex", fragmentOf("kz.ala", data, { sha256: "z".repeat(64) })],
      ["site with ..", fragmentOf("kz.ala..x", data)],
      ["size past 64 GiB", fragmentOf("kz.ala", data, {}, 64 * 1024 ** 3 + 1)],
      ["file name a path", fragmentOf("kz.ala", data, { file_name: "../x" })],
    ];
    for (const [what, fragment] of cases) {
      const result = await upload(asAla, [start(fragment)]);
      expect([what, result.code]).toEqual([what, status.INVALID_ARGUMENT]);
    }
    const partial = await readdir(join(kz.dir, "fragments", "partial"));
    expect(partial).toEqual([]);
  }, 60_000);

  it("hostile - chunks out of order, past the end, over 1 MiB, empty or with a wrong CRC are refused; nothing past the committed offset is kept", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const fragment = fragmentOf("kz.ala", data);
    const bad: [string, UploadFragmentRequest, status][] = [
      ["out of order", chunk(1024, data.subarray(1024, 2048)), status.INVALID_ARGUMENT],
      ["offset 2^53", { message: { $case: "chunk", value: { offset: 2 ** 53, data: data.subarray(0, 10), crc32: crc32(data.subarray(0, 10)) } } }, status.INVALID_ARGUMENT],
      ["over 1 MiB", chunk(0, data.subarray(0, 1024 * 1024 + 1)), status.INVALID_ARGUMENT],
      ["empty", chunk(0, Buffer.alloc(0)), status.INVALID_ARGUMENT],
      ["wrong crc", { message: { $case: "chunk", value: { offset: 0, data: data.subarray(0, 10), crc32: 1 } } }, status.DATA_LOSS],
      ["a second start", start(fragment), status.INVALID_ARGUMENT],
    ];
    for (const [what, message, code] of bad) {
      const result = await upload(asAla, [start(fragment), message]);
      expect([what, result.code, result.committed]).toEqual([what, code, [0]]);
    }
    const small = randomBytes(10);
    const past = fragmentOf("kz.ala", small);
    expect((await upload(asAla, [start(past), chunk(0, Buffer.concat([small, Buffer.alloc(1)]))])).code).toBe(status.INVALID_ARGUMENT);
    // A good upload after all that: byte-exact, and its partial file gone.
    const good = await upload(asAla, [start(fragment), chunk(0, data.subarray(0, 1024 * 1024)), chunk(1024 * 1024, data.subarray(1024 * 1024, 2 * 1024 * 1024)), chunk(2 * 1024 * 1024, data.subarray(2 * 1024 * 1024))]);
    expect(good).toMatchObject({ code: status.OK, committed: [0, 1024 * 1024, 2 * 1024 * 1024, 3 * 1024 * 1024] });
  }, 60_000);

  it("hostile - a fragment of 0 bytes is refused like an empty recording (fragments add refuses them)", async () => {
    const result = await upload(asAla, [start(fragmentOf("kz.ala", Buffer.alloc(0)))]);
    expect(result.code).toBe(status.INVALID_ARGUMENT);
    expect(result.details).toMatch(/^upload: fragment field size "0" is not a size of 1 to 68719476736 bytes$/);
    expect((await admin.listFragments({ site: "" })).fragments.filter((f) => f.size === 0)).toEqual([]);
  }, 30_000);

  it("hostile - a fragment ending far in the future (which retention would keep for ever) is refused with INVALID_ARGUMENT (R-13)", async () => {
    const data = randomBytes(100);
    const far = { ...fragmentOf("kz.ala", data), end_ms: 9_999_999_999_999 };
    const result = await upload(asAla, [start({ ...far, id: fragmentIdFor(far) }), chunk(0, data)]);
    expect(result).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'upload: fragment field end_ms "9999999999999" is not a time already past (a day of clock difference allowed)' });
  }, 30_000);

  it("hostile - a fragment nobody asked for (no request, not an incident) is refused with PERMISSION_DENIED", async () => {
    const data = randomBytes(2000);
    const fragment = recordingOf("kz.ala", "cam-unasked", data);
    const result = await upload(asAla, [start(fragment, "", "routine"), chunk(0, data)]);
    expect(result).toMatchObject({ code: status.PERMISSION_DENIED, details: `site kz.ala may not upload fragment ${fragment.id}: it is not an incident and answers no request` });
    expect((await admin.listFragments({ site: "" })).fragments.map((f) => f.id)).not.toContain(fragment.id);
  }, 30_000);

  it("hostile - a child tagging its upload with a request routed to another child is refused, and that request's record is untouched; the child it was routed to delivers", async () => {
    const { request } = await admin.requestFragments({ site: "kz.ala", camera_id: "cam-x", from_ms: 0, to_ms: 1_800_000_000_000, reason: "probe", requested_by: "user:probe" });
    const id = request!.id;
    const data = randomBytes(2000);
    const foreign = recordingOf("kz.ast", "cam-x", data);
    const refused = await upload(asAst, [start(foreign, id), chunk(0, data)]);
    expect(refused).toMatchObject({ code: status.PERMISSION_DENIED, details: `site kz.ast may not upload fragment ${foreign.id}: request ${id} was not routed to kz.ast or does not ask for it` });
    const other = recordingOf("kz.ala", "cam-other", data);
    expect((await upload(asAla, [start(other, id), chunk(0, data)])).code).toBe(status.PERMISSION_DENIED);
    const before = (await admin.listFragmentRequests({})).requests.find((r) => r.request?.id === id);
    expect({ delivered: before?.delivered, state: before?.state }).toEqual({ delivered: 0, state: "pending" });
    const asked = recordingOf("kz.ala", "cam-x", data);
    expect((await upload(asAla, [start(asked, id), chunk(0, data)])).code).toBe(status.OK);
    const after = (await admin.listFragmentRequests({})).requests.find((r) => r.request?.id === id);
    expect(after?.delivered).toBe(1);
  }, 30_000);

  it("hostile - a child answering a request never routed to it, or another child's, is refused with PERMISSION_DENIED", async () => {
    const { request } = await admin.requestFragments({ site: "kz.ala", camera_id: "cam-y", from_ms: 0, to_ms: 1_800_000_000_000, reason: "probe", requested_by: "user:probe" });
    const routed = request!.id;
    for (const [client, id] of [[asAst, routed], [asAla, "kz/99"], [asAla, "kz.ala/1"]] as const) {
      const call = client.syncCommands();
      const code = await new Promise<status>((resolve) => {
        call.on("error", (error: ServiceError) => resolve(error.code));
        call.on("data", () => undefined);
        call.write({ reply: { $case: "outcome", value: { request_id: id, state: "not_found", fragments: [], message: "nothing", answered_ms: Date.now() } } });
      });
      expect([id, code]).toEqual([id, status.PERMISSION_DENIED]);
    }
    const record = (await admin.listFragmentRequests({})).requests.find((r) => r.request?.id === routed);
    expect(record?.state).toBe("pending");
  }, 30_000);

  it("hostile - 64 idle uploads of one child hold its slots (the 65th gets RESOURCE_EXHAUSTED) while another child uploads and the node answers", async () => {
    const held: Upload[] = [];
    // All of one fragment: each attempt takes over from the one before, and they leave one partial upload.
    const idle = fragmentOf("kz.ala", randomBytes(1000));
    // The link server allows 32 streams per connection: a child wanting more opens more connections.
    const connections = await Promise.all([0, 1, 2].map(() => parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ala.dir, ownConnection: true })));
    try {
      for (let i = 0; i < 64; i += 1) {
        const open = await opened(connections[i % 2]!, idle);
        expect(open.code).toBeUndefined();
        held.push(open.call);
      }
      const extra = await opened(connections[2]!, fragmentOf("kz.ala", randomBytes(1000)));
      extra.call.cancel();
      expect(extra.code).toBe(status.RESOURCE_EXHAUSTED);
      const data = randomBytes(100_000);
      const started = Date.now();
      expect((await upload(asAst, [start(fragmentOf("kz.ast", data)), chunk(0, data)])).code).toBe(status.OK);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await kz.status()).site).toBe("kz");
    } finally {
      for (const call of held) call.cancel();
      for (const connection of connections) connection.close();
    }
    // Cancelled uploads free their places.
    await waitFor(async () => (await opened(asAla, idle)), (o) => { o.call.cancel(); return o.code === undefined; }, 10_000, "a slot free again");
  }, 90_000);

  it("hostile - partial uploads a child starts and abandons are capped: the 65th unfinished fragment is refused with RESOURCE_EXHAUSTED, other children upload on", async () => {
    const partialDir = join(kz.dir, "fragments", "partial");
    const before = (await readdir(partialDir)).length;
    const oneMiB = randomBytes(1024 * 1024);
    const codes: status[] = [];
    for (let i = 0; i < 80; i += 1) {
      // Each claims 64 GiB, sends one chunk and is abandoned.
      const fragment = fragmentOf("kz.ala", oneMiB, {}, 64 * 1024 ** 3);
      const result = await upload(asAla, [start(fragment), chunk(0, oneMiB)]);
      codes.push(result.code);
    }
    const kept = (await readdir(partialDir)).length;
    expect(before).toBeLessThan(MAX_PARTIALS_PER_CHILD);
    expect(kept).toBe(MAX_PARTIALS_PER_CHILD);
    expect(codes.filter((c) => c === status.OK).length).toBe(MAX_PARTIALS_PER_CHILD - before);
    expect(codes.filter((c) => c === status.RESOURCE_EXHAUSTED).length).toBe(80 - (MAX_PARTIALS_PER_CHILD - before));
    const refusal = (await kz.auditList(["--action", "call.refused"])).at(-1);
    expect(refusal).toMatchObject({ actor: "site:kz.ala", target: "UploadFragment", details: { code: "resource_exhausted", reason: `site kz.ala has ${MAX_PARTIALS_PER_CHILD} unfinished uploads here, the most one child may have; finish or abandon some (they expire after 7 days untouched)` } });
    // Another child is not held back by kz.ala's.
    const data = randomBytes(1000);
    expect((await upload(asAst, [start(fragmentOf("kz.ast", data)), chunk(0, data)])).code).toBe(status.OK);
  }, 120_000);

  it("hostile - a revocation closes an upload in progress within 5 s, and the revoked child's next upload is refused", async () => {
    const call = client();
    function client(): Upload {
      return asAst.uploadFragment();
    }
    const ended = new Promise<{ code: status; ms: number }>((resolve) => call.on("error", (error: ServiceError) => resolve({ code: error.code, ms: Date.now() })));
    const firstAnswer = new Promise((resolve) => call.once("data", resolve));
    const data = randomBytes(4 * 1024 * 1024);
    call.write(start(fragmentOf("kz.ast", data)));
    await firstAnswer;
    call.write(chunk(0, data.subarray(0, 1024 * 1024)));
    const revokedAt = Date.now();
    ok(await kz.cli(["revoke", "--site", "kz.ast", "--reason", "probe"]));
    const result = await ended;
    expect(result.code).toBe(status.PERMISSION_DENIED);
    expect(result.ms - revokedAt).toBeLessThan(5_000);
    const again = await upload(asAst, [start(fragmentOf("kz.ast", data))]);
    expect(again.code).toBe(status.PERMISSION_DENIED);
  }, 60_000);

  it("hostile - nothing secret in the parent's log: no private key, no join token", async () => {
    const token = await kz.invite("kz.kar");
    ok(await kz.cli(["status"]));
    const output = kz.process!.stdout() + kz.process!.stderr();
    expect(output).not.toContain("PRIVATE KEY");
    expect(output).not.toContain(token);
    const decoded = decodeJoinToken(token);
    if (!decoded.ok) throw new Error("the token does not decode");
    const secret = decoded.value.secret;
    expect(secret.length).toBeGreaterThan(10);
    expect(output).not.toContain(secret);
  }, 30_000);
});
