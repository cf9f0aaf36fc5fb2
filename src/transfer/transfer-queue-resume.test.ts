import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Fragment, UploadFragmentRequest, UploadFragmentResponse } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { NodeStore } from "../store/node-store.ts";
import { createLogger } from "../util/log.ts";
import { FragmentArchive } from "./fragment-archive.ts";
import { fragmentIdFor } from "./fragment-meta.ts";
import { CHUNK_BYTES } from "./fragment-upload.ts";
import { RateLimiter } from "./rate-limiter.ts";
import { TransferQueue, type TransferJob } from "./transfer-queue.ts";

let dir: string;
let store: NodeStore;
let limiter: RateLimiter;
let archive: FragmentArchive;
let queue: TransferQueue;
let sent: TransferJob[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-transfer-queue-"));
  store = await NodeStore.open(path.join(dir, "db"));
  limiter = new RateLimiter({ bitsPerSecond: Infinity });
  archive = new FragmentArchive(store, path.join(dir, "fragments"));
  await archive.open();
  sent = [];
  queue = new TransferQueue({
    store, archive, limiter, concurrency: 1, log: createLogger("test", "error"),
    onSent: async (job) => void sent.push(job),
    onFailed: async () => undefined,
  });
});

afterEach(async () => {
  await queue.close();
  limiter.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** What a fake parent does with a request: answers it, fails the call, or says nothing. */
type Answer = UploadFragmentResponse | "fail" | "damaged" | undefined;

/** An UploadFragment call of a fake parent: `answer` says what it does with each request. */
class FakeCall extends EventEmitter {
  readonly requests: UploadFragmentRequest[] = [];
  readonly #answer: (request: UploadFragmentRequest) => Answer;
  readonly #cancelDelayMs: number;

  constructor(answer: (request: UploadFragmentRequest) => Answer, cancelDelayMs: number) {
    super();
    this.#answer = answer;
    this.#cancelDelayMs = cancelDelayMs;
  }

  write(request: UploadFragmentRequest): boolean {
    this.requests.push(request);
    const response = this.#answer(request);
    if (response === "fail") setImmediate(() => this.emit("error", Object.assign(new Error("unavailable"), { code: status.UNAVAILABLE, details: "connection reset", metadata: undefined })));
    else if (response === "damaged") setImmediate(() => this.emit("error", Object.assign(new Error("data loss"), { code: status.DATA_LOSS, details: "arrived whole but its SHA-256 does not match", metadata: undefined })));
    else if (response) setImmediate(() => this.emit("data", response));
    return true;
  }

  end(): void {
    setImmediate(() => this.emit("end"));
  }

  /** Like grpc-js, the cancelled call reports its status later, not within cancel(). */
  cancel(): void {
    setTimeout(() => this.emit("error", Object.assign(new Error("cancelled"), { code: status.CANCELLED, details: "cancelled", metadata: undefined })), this.#cancelDelayMs);
  }
}

function fakeParent(answer: (request: UploadFragmentRequest) => Answer, cancelDelayMs = 0) {
  const calls: FakeCall[] = [];
  const client = {
    uploadFragment: () => {
      const call = new FakeCall(answer, cancelDelayMs);
      calls.push(call);
      return call;
    },
  } as unknown as ParentServiceClient;
  return { client, calls };
}

async function ownFragment(bytes: number): Promise<Fragment> {
  const file = path.join(dir, "recording.bin");
  await writeFile(file, Buffer.alloc(bytes, 1));
  const { held } = await archive.addOwn(file, (size, sha256) => {
    const fragment: Fragment = { id: "", site: "kz.ala", camera_id: "cam-1", start_ms: 1_000, end_ms: 2_000, size, sha256, incident: true, file_name: "recording.bin", added_ms: 1_000 };
    fragment.id = fragmentIdFor(fragment);
    return fragment;
  });
  return held.fragment;
}

const until = async (done: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe("TransferQueue", () => {
  it("TransferQueue - a job whose attempt was still ending when the link came back runs on the new link", async () => {
    const fragment = await ownFragment(1_000);
    // The old link's parent never answers; cancelling its call takes a while to report, as over a real connection.
    const old = fakeParent(() => undefined, 50);
    const fresh = fakeParent((request) => (request.message?.$case === "start" ? { committed: fragment.size, complete: true } : undefined));
    queue.attach(old.client);
    await queue.enqueue(fragment.id, "incident", "");
    await until(() => old.calls[0]?.requests.length === 1, "the start sent on the old link");
    // A reconnect: the link goes down and is up again before the old attempt ended.
    queue.detach();
    queue.attach(fresh.client);
    await until(() => sent.length === 1, "the job sent on the new link");
    expect(fresh.calls).toHaveLength(1);
    expect(sent[0]).toMatchObject({ fragmentId: fragment.id, attempts: 2, resent: 0 });
  });

  it("TransferQueue - a fragment damaged in the archive here fails for good once the parent finds it wrong, instead of being sent again and again", async () => {
    const fragment = await ownFragment(1_000);
    // The recorder rewrites its file after registering it; the archive holds a hard link to it.
    await writeFile(path.join(dir, "recording.bin"), Buffer.alloc(1_000, 2));
    const parent = fakeParent((request) => (request.message?.$case === "start" ? { committed: 0, complete: false } : "damaged"));
    queue.attach(parent.client);
    await queue.enqueue(fragment.id, "incident", "");
    await until(() => parent.calls.length === 1 && parent.calls[0]!.requests.length === 2, "the fragment sent once");
    const failed = async () => (await queue.list()).find((view) => view.fragmentId === fragment.id && view.state === "failed");
    for (let i = 0; i < 100 && !(await failed()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await failed()).toMatchObject({
      attempts: 1,
      lastError: expect.stringContaining(`fragment ${fragment.id} is damaged here: its file's SHA-256 is `),
    });
    expect(parent.calls).toHaveLength(1);
    expect(sent).toEqual([]);
  });

  it("TransferQueue - bytes sent again by an attempt that failed count in the job's resent, as well as the chunk in flight", async () => {
    const fragment = await ownFragment(3 * CHUNK_BYTES);
    // The parent commits what it gets, except that the first two calls fail at the chunk at CHUNK_BYTES.
    let committed = 0;
    const parent = fakeParent((request) => {
      const calls = parent.calls.length;
      if (request.message?.$case === "start") return { committed, complete: false };
      const chunk = request.message!.value as { offset: number; data: Uint8Array };
      if (chunk.offset === CHUNK_BYTES && calls <= 2) return "fail";
      committed = chunk.offset + chunk.data.byteLength;
      return { committed, complete: committed === fragment.size };
    });
    queue.attach(parent.client);
    await queue.enqueue(fragment.id, "incident", "");
    await until(() => sent.length === 1, "the job sent");
    expect(parent.calls.map((call) => call.requests.map((r) => (r.message?.$case === "chunk" ? r.message.value.offset : "start")))).toEqual([
      ["start", 0, CHUNK_BYTES],
      ["start", CHUNK_BYTES],
      ["start", CHUNK_BYTES, 2 * CHUNK_BYTES],
    ]);
    // The chunk at CHUNK_BYTES went three times: twice again, once by the attempt that failed.
    expect(sent[0]).toMatchObject({ fragmentId: fragment.id, attempts: 3, sent: 3 * CHUNK_BYTES, resent: 2 * CHUNK_BYTES });
  });
});
