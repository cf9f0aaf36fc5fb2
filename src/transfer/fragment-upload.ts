import { open } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import { UploadFragmentRequest, type Fragment, type UploadFragmentResponse } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { fromServiceError } from "../link/status.ts";
import { PRIORITY_RANK, type Priority } from "./fragment-meta.ts";

/** Bytes of fragment data per chunk: what a resumed attempt may send again, at most. */
export const CHUNK_BYTES = 256 * 1024;
/** HTTP/2's default largest DATA frame, which grpc-js keeps: each frame adds a 9-byte header. */
const HTTP2_FRAME_BYTES = 16_384;

/** Passes every fragment byte of a link, framing included, at the link's cap; higher ranks first. */
export interface ByteLimiter {
  take(bytes: number, signal?: AbortSignal, rank?: number): Promise<void>;
}

/** How far an attempt got. */
export interface Progress {
  committed: number;
  sent: number;
  resent: number;
}

/** What one attempt needs and reports. */
export interface UploadAttempt {
  client: ParentServiceClient;
  fragment: Fragment;
  path: string;
  priority: Priority;
  requestId: string;
  limiter: ByteLimiter;
  signal: AbortSignal;
  /** The highest offset sent by earlier attempts: bytes below it sent again count as re-sent. */
  sentBefore: number;
  /**
   * Before every chunk is written: the committed offset, the highest offset sent once the
   * chunk is, bytes re-sent by this attempt with it. Awaited, so that a chunk written just
   * before a crash is known as sent, and counted as re-sent when the next attempt sends it.
   */
  onSending: (progress: Progress) => Promise<void>;
  /** After every acknowledged chunk: the same, with the new committed offset. */
  onProgress: (progress: Progress) => void;
}

/**
 * One attempt to upload a fragment: learns the parent's committed offset, then sends the
 * rest in chunks, one at a time, each passed through the limiter and acknowledged before
 * the next (so a broken attempt has at most one chunk unacknowledged). Resolves once the
 * parent has the whole fragment, checked against its SHA-256.
 */
export async function uploadFragment(attempt: UploadAttempt): Promise<{ resent: number }> {
  const { client, fragment, limiter, signal } = attempt;
  const call = client.uploadFragment();
  const responses = responseReader(call);
  const onAbort = () => call.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  const file = await open(attempt.path, "r");
  let resent = 0;
  try {
    const start: UploadFragmentRequest = { message: { $case: "start", value: { fragment, priority: attempt.priority, request_id: attempt.requestId } } };
    await limiter.take(wireBytes(UploadFragmentRequest.encode(start).finish().byteLength), signal, PRIORITY_RANK[attempt.priority]);
    call.write(start);
    let { committed, complete } = await responses.next();
    let sent = Math.max(attempt.sentBefore, committed);
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    while (!complete) {
      if (committed >= fragment.size) throw new VmtreeError("internal", `the parent reports ${committed} of ${fragment.size} bytes but not the fragment complete`);
      const length = Math.min(CHUNK_BYTES, fragment.size - committed);
      const { bytesRead } = await file.read(buffer, 0, length, committed);
      if (bytesRead !== length) throw new VmtreeError("data_loss", `${attempt.path} is shorter than the ${fragment.size} bytes recorded for fragment ${fragment.id}`);
      const data = buffer.subarray(0, length);
      const chunk: UploadFragmentRequest = { message: { $case: "chunk", value: { offset: committed, data, crc32: crc32(data) } } };
      await limiter.take(chunkWireBytes(committed, length), signal, PRIORITY_RANK[attempt.priority]);
      if (committed < sent) resent += Math.min(length, sent - committed);
      sent = Math.max(sent, committed + length);
      await attempt.onSending({ committed, sent, resent });
      // One chunk in flight: the write's own callback is not proof of delivery, the answer is.
      call.write(chunk);
      const answer = await responses.next();
      if (answer.committed !== committed + length) throw new VmtreeError("internal", `the parent acknowledged offset ${answer.committed}, expected ${committed + length}`);
      ({ committed, complete } = answer);
      attempt.onProgress({ committed, sent, resent });
    }
    call.end();
    await responses.ended();
    return { resent };
  } finally {
    signal.removeEventListener("abort", onAbort);
    await file.close();
    call.cancel();
  }
}

/**
 * Bytes a chunk takes on the wire: its protobuf encoding, gRPC's 5-byte message prefix,
 * and a 9-byte HTTP/2 frame header per frame. TLS records add a little more, uncounted.
 */
export function chunkWireBytes(offset: number, length: number): number {
  const chunk = 1 + varintBytes(offset) + 1 + varintBytes(length) + length + 1 + 4;
  return wireBytes(1 + varintBytes(chunk) + chunk);
}

function wireBytes(messageBytes: number): number {
  const framed = messageBytes + 5;
  return framed + 9 * Math.ceil(framed / HTTP2_FRAME_BYTES);
}

function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes += 1;
  }
  return bytes;
}

/** Reads a call's answers one at a time; a failed or ended call rejects the waiting read. */
function responseReader(call: ClientDuplexStream<UploadFragmentRequest, UploadFragmentResponse>) {
  const queued: UploadFragmentResponse[] = [];
  let failure: VmtreeError | undefined;
  let finished = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  call.on("data", (response: UploadFragmentResponse) => {
    queued.push(response);
    notify();
  });
  call.on("error", (error) => {
    failure = fromServiceError(error);
    notify();
  });
  call.on("end", () => {
    finished = true;
    notify();
  });
  const settle = () => new Promise<void>((resolve) => (wake = resolve));
  return {
    async next(): Promise<UploadFragmentResponse> {
      while (queued.length === 0) {
        if (failure) throw failure;
        if (finished) throw new VmtreeError("unavailable", "the parent ended the upload early");
        await settle();
      }
      return queued.shift()!;
    },
    async ended(): Promise<void> {
      while (!finished && !failure) await settle();
      if (failure) throw failure;
    },
  };
}
