import type { FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import type { UploadFragmentRequest, UploadFragmentResponse } from "../gen/vmtree/v1/fragment.ts";
import { eachMessage } from "../link/each-message.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { waitForDrain } from "../util/drain.ts";
import type { FragmentArchive, HeldFragment, PartialUpload } from "./fragment-archive.ts";
import { checkFragment, PRIORITIES, type Priority } from "./fragment-meta.ts";
import { isRequestId, type FragmentRequests } from "./fragment-requests.ts";

/** Largest chunk accepted: a sender's chunks are smaller, and one chunk is what a resume may send again. */
export const MAX_CHUNK_BYTES = 1024 * 1024;
/**
 * Unfinished uploads one child may have here: far more than it sends in parallel, and what
 * bounds the partial data a child can start and abandon (each kept until it expires).
 */
export const MAX_PARTIALS_PER_CHILD = 64;

/** An upload arriving here, for the transfers view. */
export interface IncomingUpload {
  fragmentId: string;
  from: string;
  priority: Priority;
  committed: number;
  total: number;
  startedMs: number;
  /** Bytes committed when this attempt started: the rate counts this attempt's bytes only. */
  startOffset: number;
}

interface Attempt {
  view: IncomingUpload;
  superseded: boolean;
  /** The chunk being written, if any: a newer attempt waits for it before it reads the committed offset. */
  inHand: Promise<void>;
}

/**
 * The parent's side of UploadFragment. Every chunk is checked (offset, size, CRC-32),
 * written and made durable before it is acknowledged, so the committed offset a resumed
 * attempt learns is exact. The newest attempt for a fragment wins: it waits for the older
 * one to finish the chunk in hand, and the older one is refused at its next chunk, so two
 * attempts never write at once. (The older one may be a sender that crashed and whose
 * connection has not timed out yet: it is not waited for.)
 */
export class UploadReceiver {
  readonly #archive: FragmentArchive;
  readonly #requests: FragmentRequests;
  readonly #onReceived: (held: HeldFragment, partial: PartialUpload) => Promise<void>;
  readonly #attempts = new Map<string, Attempt>();

  constructor(archive: FragmentArchive, requests: FragmentRequests, onReceived: (held: HeldFragment, partial: PartialUpload) => Promise<void>) {
    this.#archive = archive;
    this.#requests = requests;
    this.#onReceived = onReceived;
  }

  /** Uploads arriving now. */
  incoming(): IncomingUpload[] {
    return [...this.#attempts.values()].map((a) => ({ ...a.view }));
  }

  /** Serves one attempt of `child`; resolves when it ended. */
  async serve(call: ServerDuplexStream<UploadFragmentRequest, UploadFragmentResponse>, child: string): Promise<void> {
    let attempt: Attempt | undefined;
    let release: () => void = () => undefined;
    let file: FileHandle | undefined;
    let partial: PartialUpload | undefined;
    const send = async (response: UploadFragmentResponse) => {
      if (!call.write(response)) await waitForDrain(call);
    };
    try {
      await eachMessage<UploadFragmentRequest>(call, async (request) => {
        if (!attempt) {
          if (request.message?.$case !== "start") throw new VmtreeError("invalid_argument", "an upload starts with its fragment's description");
          const checked = checkStart(request.message.value, child);
          const start = { ...checked, requestId: await this.#purpose(checked, child) };
          const held = await this.#archive.get(start.fragment.id);
          if (held) {
            attempt = { view: view(start, child, held.fragment.size), superseded: false, inHand: Promise.resolve() };
            return send(alreadyHeld(held, start.fragment));
          }
          let heldSince: HeldFragment | undefined;
          ({ attempt, release } = this.#takeOver(start.fragment.id, view(start, child, 0), async (taken) => {
            // The older attempt's last chunk may have completed the fragment meanwhile.
            heldSince = await this.#archive.get(start.fragment.id);
            if (heldSince) return;
            if (!(await this.#archive.partial(start.fragment.id))) await this.#checkRoom(child);
            partial = await this.#archive.resumeUpload({ fragment: start.fragment, from: child, priority: start.priority, requestId: start.requestId });
            if (partial.fragment.size !== start.fragment.size) throw new VmtreeError("invalid_argument", `fragment ${start.fragment.id} is being uploaded with another size`);
            taken.view.committed = taken.view.startOffset = partial.committed;
            file = await this.#archive.openPartial(start.fragment.id);
          }));
          await attempt.inHand;
          if (heldSince) return send(alreadyHeld(heldSince, start.fragment));
          if (!partial) throw new VmtreeError("internal", "upload started without its partial file");
          if (partial.committed === partial.fragment.size) return send(await this.#complete(partial));
          return send({ committed: partial.committed, complete: false });
        }
        if (attempt.superseded) throw supersededError();
        if (!partial || !file) throw new VmtreeError("invalid_argument", "the fragment is complete; no more chunks are expected");
        if (request.message?.$case !== "chunk") throw new VmtreeError("invalid_argument", "an upload sends its description once, first");
        checkChunk(request.message.value, partial);
        // Set in the same turn as the check above, so that a newer attempt never misses it.
        // A last chunk stays in hand until its fragment is stored: a newer attempt then finds
        // it held, instead of completing the same partial file a second time.
        const stored = this.#store(file, partial, request.message.value.data);
        attempt.inHand = stored.then(() => undefined, () => undefined);
        const response = await stored;
        attempt.view.committed = partial.committed;
        if (response.complete) {
          file = undefined;
          partial = undefined;
        }
        return send(response);
      });
      call.end();
    } finally {
      await file?.close().catch(() => undefined);
      release();
    }
  }

  /** Writes a chunk and, when it was the last, checks and stores the whole fragment. */
  async #store(file: FileHandle, partial: PartialUpload, data: Uint8Array): Promise<UploadFragmentResponse> {
    await this.#archive.writeChunk(file, partial, data);
    if (partial.committed < partial.fragment.size) return { committed: partial.committed, complete: false };
    await file.close();
    return this.#complete(partial);
  }

  /**
   * Why `child` may send this fragment: a request routed to it that the fragment answers
   * (returns its id), or an incident, which goes up unasked (R-6.7; a request id that does
   * not qualify is then dropped, "" is returned). Anything else nobody asked for.
   */
  async #purpose(start: ReturnType<typeof checkStart>, child: string): Promise<string> {
    const { fragment, requestId } = start;
    const record = requestId ? await this.#requests.get(requestId) : undefined;
    const { request } = record ?? {};
    const answers = request !== undefined && isInSubtree(fragment.site, request.site) && fragment.camera_id === request.camera_id && fragment.start_ms <= request.to_ms && fragment.end_ms >= request.from_ms;
    if (record?.via === child && answers) return requestId;
    if (fragment.incident) return "";
    const why = requestId ? `request ${requestId} was not routed to ${child} or does not ask for it` : "it is not an incident and answers no request";
    throw new VmtreeError("permission_denied", `site ${child} may not upload fragment ${fragment.id}: ${why}`);
  }

  /** Refuses a new upload from `child` past {@link MAX_PARTIALS_PER_CHILD} unfinished ones. */
  async #checkRoom(child: string): Promise<void> {
    const unfinished = (await this.#archive.partials()).filter((p) => p.from === child).length;
    if (unfinished >= MAX_PARTIALS_PER_CHILD) {
      throw new VmtreeError("resource_exhausted", `site ${child} has ${unfinished} unfinished uploads here, the most one child may have; finish or abandon some (they expire after 7 days untouched)`);
    }
  }

  async #complete(partial: PartialUpload): Promise<UploadFragmentResponse> {
    const held = await this.#archive.completeUpload(partial);
    await this.#onReceived(held, partial);
    await this.#archive.settleUpload(partial.fragment.id);
    return { committed: partial.fragment.size, complete: true };
  }

  /**
   * Makes a new attempt the one for `id`. Its `startup` runs once the older attempt has
   * finished what it had in hand (its own startup or a chunk), and is what a still newer
   * attempt waits for in turn; an attempt superseded before its startup never runs it.
   */
  #takeOver(id: string, incoming: IncomingUpload, startup: (attempt: Attempt) => Promise<void>): { attempt: Attempt; release: () => void } {
    const older = this.#attempts.get(id);
    const attempt: Attempt = { view: incoming, superseded: false, inHand: Promise.resolve() };
    this.#attempts.set(id, attempt);
    if (older) older.superseded = true;
    attempt.inHand = (async () => {
      await older?.inHand.catch(() => undefined);
      if (attempt.superseded) throw supersededError();
      await startup(attempt);
    })();
    const release = () => {
      if (this.#attempts.get(id) === attempt) this.#attempts.delete(id);
    };
    return { attempt, release };
  }
}

/** The answer to an attempt for a fragment held here already: complete, if it is the same one. */
function alreadyHeld(held: HeldFragment, fragment: { id: string; size: number; sha256: string }): UploadFragmentResponse {
  if (held.fragment.sha256 !== fragment.sha256 || held.fragment.size !== fragment.size) throw new VmtreeError("invalid_argument", `fragment ${fragment.id} is held here with another size or SHA-256`);
  return { committed: held.fragment.size, complete: true };
}

function supersededError(): VmtreeError {
  return new VmtreeError("aborted", "a newer attempt to upload this fragment took over");
}

function checkStart(start: { fragment?: Parameters<typeof checkFragment>[0]; priority: string; request_id: string }, child: string) {
  const fragment = checkFragment(start.fragment, "upload");
  if (!isInSubtree(fragment.site, child)) throw new VmtreeError("permission_denied", `site ${child} may not upload fragment ${fragment.id} of ${fragment.site}, outside its subtree`);
  if (!(PRIORITIES as readonly string[]).includes(start.priority)) throw new VmtreeError("invalid_argument", `upload priority ${JSON.stringify(start.priority.slice(0, 40))} is not one of ${PRIORITIES.join(", ")}`);
  if (start.request_id !== "" && !isRequestId(start.request_id)) throw new VmtreeError("invalid_argument", `request id ${JSON.stringify(start.request_id.slice(0, 160))} is not a request id`);
  return { fragment, priority: start.priority as Priority, requestId: start.request_id };
}

function checkChunk(chunk: { offset: number; data: Uint8Array; crc32: number }, partial: PartialUpload): void {
  const { offset, data } = chunk;
  if (!Number.isSafeInteger(offset) || offset !== partial.committed) {
    throw new VmtreeError("invalid_argument", `chunk at offset ${offset} of fragment ${partial.fragment.id}: the next chunk starts at ${partial.committed}`);
  }
  if (data.byteLength === 0 || data.byteLength > MAX_CHUNK_BYTES) throw new VmtreeError("invalid_argument", `a chunk carries 1 to ${MAX_CHUNK_BYTES} bytes, not ${data.byteLength}`);
  if (offset + data.byteLength > partial.fragment.size) {
    throw new VmtreeError("invalid_argument", `chunk at offset ${offset} of ${data.byteLength} bytes ends past the fragment's ${partial.fragment.size} bytes`);
  }
  if (crc32(data) !== chunk.crc32) throw new VmtreeError("data_loss", `chunk at offset ${offset} of fragment ${partial.fragment.id} does not match its CRC-32; send it again`);
}

function view(start: { fragment: { id: string; size: number }; priority: Priority }, from: string, committed: number): IncomingUpload {
  return { fragmentId: start.fragment.id, from, priority: start.priority, committed, total: start.fragment.size, startedMs: Date.now(), startOffset: committed };
}
