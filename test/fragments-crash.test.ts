import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { status, type ClientDuplexStream } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fragment, UploadFragmentRequest, UploadFragmentResponse } from "../src/gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../src/gen/vmtree/v1/link.ts";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { NodeStore } from "../src/store/node-store.ts";
import type { PartialUpload } from "../src/transfer/fragment-archive.ts";
import { fragmentIdFor } from "../src/transfer/fragment-meta.ts";
import { CHUNK_BYTES } from "../src/transfer/fragment-upload.ts";
import { parentClient } from "./support/direct-client.ts";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { initRoot, joinChild, waitFor, type TestNode } from "./support/tree.ts";

const MIB = 1024 * 1024;
/** Large enough that a capped transfer takes seconds; a whole number of chunks, so every chunk in flight is a full one. */
const BIG_BYTES = 48 * MIB;
/** 64 Mbit/s: 48 MiB take about 6.5 s. */
const CAP_BITS = 64_000_000;
const ms = (iso: string) => Date.parse(iso);

/** One UploadFragment call made by hand, as the child would make it, reading its answers one at a time. */
class HandUpload {
  readonly #call: ClientDuplexStream<UploadFragmentRequest, UploadFragmentResponse>;
  readonly #answers: UploadFragmentResponse[] = [];
  #wake: (() => void) | undefined;
  #over = false;
  /** The call's status code once it ended. */
  readonly ended: Promise<status>;

  constructor(client: ParentServiceClient) {
    this.#call = client.uploadFragment({ deadline: Date.now() + 60_000 });
    this.#call.on("data", (answer: UploadFragmentResponse) => {
      this.#answers.push(answer);
      this.#wake?.();
    });
    // The error carries the same status; the 'status' event alone says when the call is over.
    this.#call.on("error", () => undefined);
    this.ended = new Promise((resolve) => this.#call.on("status", (s: { code: status }) => resolve(s.code)));
    void this.ended.then(() => {
      this.#over = true;
      this.#wake?.();
    });
  }

  start(fragment: Fragment): void {
    this.#call.write({ message: { $case: "start", value: { fragment, priority: "routine", request_id: "" } } });
  }

  chunk(offset: number, data: Buffer, crc = crc32(data)): void {
    this.#call.write({ message: { $case: "chunk", value: { offset, data, crc32: crc } } });
  }

  /** The next answer, or undefined once the call ended without one. */
  async next(): Promise<UploadFragmentResponse | undefined> {
    for (;;) {
      const answer = this.#answers.shift();
      if (answer) return answer;
      if (this.#over) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  end(): void {
    this.#call.end();
  }
}

/** An incident fragment of `site` with `content` (a child may send one unasked), described as its site would. */
function describeFragment(site: string, camera: string, startIso: string, content: Buffer): Fragment {
  const fragment: Fragment = {
    id: "", site, camera_id: camera, start_ms: ms(startIso), end_ms: ms(startIso) + 60_000, size: content.byteLength,
    sha256: createHash("sha256").update(content).digest("hex"), incident: true, file_name: "hand.bin", added_ms: Date.now(),
  };
  fragment.id = fragmentIdFor(fragment);
  return fragment;
}

/** The partial upload a stopped node's store records for `id`. */
async function storedPartial(node: TestNode, id: string): Promise<PartialUpload | undefined> {
  const store = await NodeStore.open(join(node.dir, "db"), { createIfMissing: false });
  try {
    return await store.section<PartialUpload>("fragment-partials").get(id);
  } finally {
    await store.close();
  }
}

// kz ← kz.ala through a proxy, both served and killed with SIGKILL mid-transfer; kz.ast is
// enrolled but not served: the tests hold its key and make its uploads by hand (R-6.9, issue 5 item 3).
describe("fragment transfer under crashes", () => {
  let kz: TestNode;
  let ala: TestNode;
  let ast: TestNode;
  let proxy: TcpProxy;
  let admin: { kz: NodeAdmin; ala: NodeAdmin };
  let files: string;

  const heldAt = async (node: NodeAdmin, id: string) => (await node.listFragments({ site: "" })).fragments.some((f) => f.id === id);
  const down = async (id: string) => (await admin.kz.listTransfers({})).transfers.find((t) => t.fragment_id === id && t.direction === "down");
  const up = async (id: string) => (await admin.ala.listTransfers({})).transfers.find((t) => t.fragment_id === id && t.direction === "up");
  const serveAla = async () => {
    await ala.serve(["--parent", proxy.address]);
    admin.ala = await connectAdmin(ala.dir);
  };
  const serveKz = async () => {
    await kz.serve();
    const [host, port] = kz.address.split(":");
    proxy.setTarget({ host: host!, port: Number(port) });
    admin.kz = await connectAdmin(kz.dir);
  };
  const asAst = () => parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ast.dir });

  /** Adds a 48 MiB incident recording at kz.ala, which sends it up at once; resolves with its id and bytes. */
  const addBig = async (name: string, camera: string, startIso: string) => {
    const content = randomBytes(BIG_BYTES);
    const path = join(files, name);
    await writeFile(path, content);
    const added = await admin.ala.addFragment({ camera_id: camera, file_path: path, start_ms: ms(startIso), end_ms: ms(startIso) + 300_000, incident: true });
    return { id: added.fragment!.id, content };
  };

  const exported = async (id: string, name: string) => {
    const out = join(files, name);
    await admin.kz.exportFragment({ id, out_path: out });
    return readFile(out);
  };

  beforeAll(async () => {
    files = await makeTempDir("vmtree-crash-files-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, "kz.ala");
    ast = await joinChild(kz, "kz.ast");
    const [host, port] = kz.address.split(":");
    proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    admin = { kz: await connectAdmin(kz.dir), ala: undefined as unknown as NodeAdmin };
    await serveAla();
    await waitFor(() => ala.status(), (s) => s.parent?.state === "connected", 20_000, "kz.ala connected");
    await admin.kz.setLinkLimit({ site: "kz.ala", bits_per_second: CAP_BITS });
    await waitFor(() => admin.ala.listTransfers({}), (t) => t.cap_bits_per_second === CAP_BITS && t.cap_source === "parent", 10_000, "the cap applied at kz.ala");
  }, 90_000);

  afterAll(async () => {
    await admin?.kz?.close();
    await admin?.ala?.close();
    await proxy?.close();
    await killAll();
    await removeTempDirs();
  });

  /**
   * Waits until a quarter of `id` is at kz, then drops every byte of the link: the sender
   * has written exactly one chunk that is not acknowledged (the one in flight), and both
   * ends stand still. Resolves with kz's committed offset and the offset of that chunk,
   * the last one kz.ala had acknowledged.
   */
  const freezeMidTransfer = async (id: string) => {
    const before = await waitFor(() => down(id), (t) => (t?.bytes_done ?? 0) >= 12 * MIB, 30_000, "a quarter received at kz");
    expect(before!.total).toBe(BIG_BYTES);
    proxy.blackhole();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const [received, sending] = [await down(id), await up(id)];
    expect(received!.bytes_done).toBeLessThan(BIG_BYTES);
    expect(sending!.state).toBe("sending");
    return { committed: received!.bytes_done, acknowledged: sending!.bytes_done };
  };

  it("fragment transfer - kill -9 of the sender mid-transfer: the restarted sender resumes from the parent's offset, at most one chunk sent again, byte-identical (R-6.9)", async () => {
    const { id, content } = await addBig("sender-kill.bin", "ala-cam-001", "2026-11-23T10:00:00Z");
    const { committed, acknowledged } = await freezeMidTransfer(id);
    // kz holds the chunk in flight, or not yet: at most one chunk past what kz.ala heard.
    expect([0, CHUNK_BYTES]).toContain(committed - acknowledged);
    await admin.ala.close();
    await ala.kill9();
    proxy.resume();
    await waitFor(() => down(id), (t) => t === undefined, 15_000, "kz's attempt ended with the sender's connection");
    expect(await heldAt(admin.kz, id)).toBe(false);

    await serveAla();
    await waitFor(() => heldAt(admin.kz, id), (held) => held, 60_000, "the fragment at kz after the restart");
    const sent = await waitFor(() => up(id), (t) => t?.state === "done", 10_000, "the job done at kz.ala");
    expect(sent!.attempts).toBe(2);
    // The restarted sender resumed at kz's offset: what it sent again is the chunk in flight, unless kz had it.
    expect(sent!.resent).toBe(acknowledged + CHUNK_BYTES - committed);
    expect((await exported(id, "sender-kill.out")).equals(content)).toBe(true);
  }, 120_000);

  it("fragment transfer - kill -9 of the receiver mid-transfer: the upload resumes from the receiver's durable committed offset, at most one chunk sent again, byte-identical (R-6.9)", async () => {
    const { id, content } = await addBig("receiver-kill.bin", "ala-cam-002", "2026-11-23T11:00:00Z");
    const { committed, acknowledged } = await freezeMidTransfer(id);
    expect([0, CHUNK_BYTES]).toContain(committed - acknowledged);
    await admin.kz.close();
    await kz.kill9();

    // What kz had committed survived the kill: the offset it recorded and every byte below it.
    const partial = await storedPartial(kz, id);
    expect(partial!.committed).toBe(committed);
    const partialFile = await readFile(join(kz.dir, "fragments", "partial", `${id}.part`));
    expect(partialFile.byteLength).toBeGreaterThanOrEqual(committed);
    expect(partialFile.subarray(0, committed).equals(content.subarray(0, committed))).toBe(true);

    await serveKz();
    proxy.resume();
    await waitFor(() => heldAt(admin.kz, id), (held) => held, 60_000, "the fragment at kz after its restart");
    const sent = await waitFor(() => up(id), (t) => t?.state === "done", 10_000, "the job done at kz.ala");
    expect(sent!.attempts).toBe(2);
    expect(sent!.resent).toBe(acknowledged + CHUNK_BYTES - committed);
    expect((await exported(id, "receiver-kill.out")).equals(content)).toBe(true);
  }, 120_000);

  it("fragment transfer - a chunk whose CRC-32 does not match is refused with DATA_LOSS, the committed offset stays, and a correct attempt completes", async () => {
    const client = await asAst();
    try {
      const content = randomBytes(3 * CHUNK_BYTES + 123);
      const fragment = describeFragment("kz.ast", "ast-cam-001", "2026-11-24T08:00:00Z", content);
      const first = new HandUpload(client);
      first.start(fragment);
      expect(await first.next()).toEqual({ committed: 0, complete: false });
      first.chunk(0, content.subarray(0, CHUNK_BYTES));
      expect(await first.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
      const second = content.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES);
      first.chunk(CHUNK_BYTES, second, (crc32(second) ^ 1) >>> 0);
      expect(await first.ended).toBe(status.DATA_LOSS);

      const retry = new HandUpload(client);
      retry.start(fragment);
      expect(await retry.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
      for (let offset = CHUNK_BYTES; offset < content.byteLength; offset += CHUNK_BYTES) {
        const data = content.subarray(offset, offset + CHUNK_BYTES);
        retry.chunk(offset, data);
        expect(await retry.next()).toEqual({ committed: offset + data.byteLength, complete: offset + data.byteLength === content.byteLength });
      }
      retry.end();
      expect(await retry.ended).toBe(status.OK);
      expect((await exported(fragment.id, "crc.out")).equals(content)).toBe(true);
    } finally {
      client.close();
    }
  }, 30_000);

  it("fragment transfer - chunks off the committed offset or past the fragment's end are refused with INVALID_ARGUMENT, and the offset stays", async () => {
    const client = await asAst();
    try {
      const content = randomBytes(2 * CHUNK_BYTES);
      const fragment = describeFragment("kz.ast", "ast-cam-002", "2026-11-24T09:00:00Z", content);
      const opening = new HandUpload(client);
      opening.start(fragment);
      expect(await opening.next()).toEqual({ committed: 0, complete: false });
      opening.chunk(0, content.subarray(0, CHUNK_BYTES));
      expect(await opening.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
      opening.chunk(2 * CHUNK_BYTES, content.subarray(0, 10));
      expect(await opening.ended).toBe(status.INVALID_ARGUMENT);

      // Before the committed offset, far past the fragment's end, and at the offset but running past the end.
      const refusals: [number, Buffer][] = [
        [0, content.subarray(0, CHUNK_BYTES)],
        [10 * CHUNK_BYTES, content.subarray(0, 10)],
        [CHUNK_BYTES, Buffer.concat([content.subarray(CHUNK_BYTES), Buffer.alloc(1)])],
      ];
      for (const [offset, data] of refusals) {
        const attempt = new HandUpload(client);
        attempt.start(fragment);
        expect(await attempt.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
        attempt.chunk(offset, data);
        expect(await attempt.ended).toBe(status.INVALID_ARGUMENT);
      }
      const last = new HandUpload(client);
      last.start(fragment);
      expect(await last.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
      last.chunk(CHUNK_BYTES, content.subarray(CHUNK_BYTES));
      expect(await last.next()).toEqual({ committed: 2 * CHUNK_BYTES, complete: true });
      last.end();
      expect((await exported(fragment.id, "offsets.out")).equals(content)).toBe(true);
    } finally {
      client.close();
    }
  }, 30_000);

  it("fragment transfer - two attempts at one fragment at once: the newer wins from the committed offset, the older ends with ABORTED, byte-identical", async () => {
    const [older, newer] = [await asAst(), await asAst()];
    try {
      const content = randomBytes(4 * CHUNK_BYTES);
      const fragment = describeFragment("kz.ast", "ast-cam-003", "2026-11-24T10:00:00Z", content);
      const first = new HandUpload(older);
      first.start(fragment);
      expect(await first.next()).toEqual({ committed: 0, complete: false });
      first.chunk(0, content.subarray(0, CHUNK_BYTES));
      expect(await first.next()).toEqual({ committed: CHUNK_BYTES, complete: false });

      const second = new HandUpload(newer);
      second.start(fragment);
      expect(await second.next()).toEqual({ committed: CHUNK_BYTES, complete: false });
      // The older attempt goes on with other bytes for the same offset: they must never land.
      first.chunk(CHUNK_BYTES, randomBytes(CHUNK_BYTES));
      expect(await first.ended).toBe(status.ABORTED);
      for (let offset = CHUNK_BYTES; offset < content.byteLength; offset += CHUNK_BYTES) {
        second.chunk(offset, content.subarray(offset, offset + CHUNK_BYTES));
        expect(await second.next()).toEqual({ committed: offset + CHUNK_BYTES, complete: offset + CHUNK_BYTES === content.byteLength });
      }
      second.end();
      expect(await second.ended).toBe(status.OK);
      expect((await exported(fragment.id, "concurrent.out")).equals(content)).toBe(true);
    } finally {
      older.close();
      newer.close();
    }
  }, 30_000);

  it("fragment transfer - two senders racing over one fragment from the start: one wins, the other ends ABORTED or finds it complete, byte-identical, received once", async () => {
    const clients = [await asAst(), await asAst()];
    /** Sends like the real sender: from the offset answered, one chunk at a time, until complete or refused. */
    const send = async (client: ParentServiceClient, fragment: Fragment, content: Buffer) => {
      const upload = new HandUpload(client);
      upload.start(fragment);
      let answer = await upload.next();
      while (answer && !answer.complete) {
        upload.chunk(answer.committed, content.subarray(answer.committed, answer.committed + CHUNK_BYTES));
        answer = await upload.next();
      }
      if (answer?.complete) upload.end();
      return { complete: answer?.complete === true, code: await upload.ended };
    };
    try {
      for (let round = 0; round < 5; round += 1) {
        const content = randomBytes(4 * MIB);
        const fragment = describeFragment("kz.ast", "ast-cam-005", `2026-11-25T0${round}:00:00Z`, content);
        const outcomes = await Promise.all(clients.map((client) => send(client, fragment, content)));
        expect(outcomes.filter((o) => o.complete && o.code === status.OK).length).toBeGreaterThanOrEqual(1);
        for (const outcome of outcomes) expect([{ complete: true, code: status.OK }, { complete: false, code: status.ABORTED }]).toContainEqual(outcome);
        expect((await exported(fragment.id, `race-${round}.out`)).equals(content)).toBe(true);
        const receipts = (await kz.auditList(["--action", "fragment.receive"])).filter((e) => e.target === fragment.id);
        expect(receipts).toHaveLength(1);
      }
    } finally {
      for (const client of clients) client.close();
    }
  }, 60_000);

  it("fragment transfer - a newer attempt starting while the older sends its last chunk gets the fragment complete, never a second upload", async () => {
    const [older, newer] = [await asAst(), await asAst()];
    try {
      // Large enough that checking its SHA-256 at the end takes a while.
      const content = randomBytes(64 * MIB);
      const fragment = describeFragment("kz.ast", "ast-cam-004", "2026-11-24T11:00:00Z", content);
      const first = new HandUpload(older);
      first.start(fragment);
      expect(await first.next()).toEqual({ committed: 0, complete: false });
      const lastOffset = content.byteLength - CHUNK_BYTES;
      for (let offset = 0; offset < lastOffset; offset += CHUNK_BYTES) {
        first.chunk(offset, content.subarray(offset, offset + CHUNK_BYTES));
        expect((await first.next())?.committed).toBe(offset + CHUNK_BYTES);
      }
      first.chunk(lastOffset, content.subarray(lastOffset));
      // Time for the last chunk to reach the receiver; checking 64 MiB against their SHA-256 then takes longer.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = new HandUpload(newer);
      second.start(fragment);
      const [firstLast, secondFirst] = await Promise.all([first.next(), second.next()]);
      // The older attempt's last chunk was in hand: the newer one waits for it and learns the fragment is complete.
      expect(firstLast).toEqual({ committed: content.byteLength, complete: true });
      expect(secondFirst).toEqual({ committed: content.byteLength, complete: true });
      second.end();
      expect(await second.ended).toBe(status.OK);
      expect((await exported(fragment.id, "last-chunk.out")).equals(content)).toBe(true);
      const receipts = (await kz.auditList(["--action", "fragment.receive"])).filter((e) => e.target === fragment.id);
      expect(receipts).toHaveLength(1);
    } finally {
      older.close();
      newer.close();
    }
  }, 60_000);
});
