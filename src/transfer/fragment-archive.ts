import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, link, lstat, mkdir, open, readdir, realpath, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { VmtreeError } from "../errors.ts";
import type { Fragment } from "../gen/vmtree/v1/fragment.ts";
import type { NodeStore } from "../store/node-store.ts";
import { assertFragmentId, type Priority } from "./fragment-meta.ts";

/** A fragment held here, with how it came. */
export interface HeldFragment {
  fragment: Fragment;
  /** The child it came from; absent for this site's own recordings. */
  from?: string;
  receivedMs: number;
}

/** An upload under way into this node: how far it is durable. */
export interface PartialUpload {
  fragment: Fragment;
  from: string;
  priority: Priority;
  requestId: string;
  /** Bytes of the partial file that are durable: where the next chunk must start. */
  committed: number;
  updatedMs: number;
}

/**
 * The fragments a node holds, as files named by their id in `DIR/fragments`, with their
 * descriptions in the store. Uploads arrive in `DIR/fragments/partial` and are moved
 * into place by an atomic rename once their SHA-256 matched.
 */
export class FragmentArchive {
  readonly #dir: string;
  readonly #held;
  readonly #partials;
  /**
   * The SHA-256 of each upload's committed bytes so far, fed chunk by chunk, so that the
   * check at completion does not read the whole file again: that read came after the last
   * chunk, and with many fragments finishing together it stalled the link for seconds.
   */
  readonly #digests = new Map<string, { hash: Hash; offset: number }>();

  constructor(store: NodeStore, dir: string) {
    this.#dir = dir;
    this.#held = store.section<HeldFragment>("fragments");
    this.#partials = store.section<PartialUpload>("fragment-partials");
  }

  get #partialDir(): string {
    return join(this.#dir, "partial");
  }

  /**
   * Creates the folders and finishes what a crash interrupted: an upload moved into place
   * but not recorded as held, or recorded but not settled. Returns those uploads, for what
   * their arrival triggers to be done before {@link settleUpload}.
   */
  async open(): Promise<PartialUpload[]> {
    await mkdir(this.#partialDir, { recursive: true, mode: 0o700 });
    const arrived: PartialUpload[] = [];
    for (const partial of await this.#partials.values().all()) {
      if (!(await exists(this.pathOf(partial.fragment.id)))) continue;
      if (!(await this.#held.get(partial.fragment.id))) await this.#recordHeld(partial);
      arrived.push(partial);
    }
    return arrived;
  }

  pathOf(id: string): string {
    return join(this.#dir, assertFragmentId(id));
  }

  #partialPath(id: string): string {
    return join(this.#partialDir, `${assertFragmentId(id)}.part`);
  }

  get(id: string): Promise<HeldFragment | undefined> {
    return this.#held.get(assertFragmentId(id));
  }

  async list(): Promise<HeldFragment[]> {
    return this.#held.values().all();
  }

  /**
   * Takes a recording of this site into the archive: a hard link where the file system
   * allows it (instant, and the recorder's file stays as it is), a copy otherwise.
   * `describe` gets the size and SHA-256 of what was taken and returns its description.
   */
  async addOwn(sourcePath: string, describe: (size: number, sha256: string) => Fragment): Promise<{ held: HeldFragment; alreadyPresent: boolean }> {
    // A node that never served has not opened its archive, and a site registers recordings
    // with its service stopped too (the CLI then opens the store directly).
    await mkdir(this.#partialDir, { recursive: true, mode: 0o700 });
    const staging = join(this.#partialDir, `add-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    try {
      // The file a symlink names, not the link: the archive must not follow a link that can change.
      const source = await realpath(sourcePath);
      // Opening a FIFO or a device would block one of libuv's few threads, which the store needs too.
      await assertRegularFile(source, sourcePath);
      await link(source, staging).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== "EXDEV" && error.code !== "EPERM") throw error;
        await copyFile(source, staging);
      });
    } catch (error) {
      if (error instanceof VmtreeError) throw error;
      throw new VmtreeError("invalid_argument", `cannot read the recording ${sourcePath}: ${(error as Error).message}`, { cause: error });
    }
    try {
      // Again on what was taken: the source may have been replaced since it was checked.
      await assertRegularFile(staging, sourcePath);
      const { size } = await stat(staging);
      if (size === 0) throw new VmtreeError("invalid_argument", `the recording ${sourcePath} is empty`);
      const fragment = describe(size, await sha256Of(staging));
      const before = await this.#held.get(fragment.id);
      if (before) return { held: before, alreadyPresent: true };
      await rename(staging, this.pathOf(fragment.id));
      const held: HeldFragment = { fragment, receivedMs: Date.now() };
      await this.#held.put(fragment.id, held);
      return { held, alreadyPresent: false };
    } finally {
      await rm(staging, { force: true });
    }
  }

  /** Deletes a fragment held here, file and description. */
  async remove(id: string): Promise<void> {
    await this.#held.del(assertFragmentId(id));
    await rm(this.pathOf(id), { force: true });
  }

  partial(id: string): Promise<PartialUpload | undefined> {
    return this.#partials.get(assertFragmentId(id));
  }

  async partials(): Promise<PartialUpload[]> {
    return this.#partials.values().all();
  }

  /**
   * Where an upload of `fragment` resumes: its committed offset, after cutting the partial
   * file back to it (bytes past it were written but never acknowledged). A new upload
   * starts an empty partial file at 0.
   */
  async resumeUpload(start: Omit<PartialUpload, "committed" | "updatedMs">): Promise<PartialUpload> {
    const known = await this.#partials.get(start.fragment.id);
    const partial: PartialUpload = known ? { ...known, priority: start.priority, requestId: known.requestId || start.requestId } : { ...start, committed: 0, updatedMs: Date.now() };
    const file = await open(this.#partialPath(start.fragment.id), known ? "r+" : "w", 0o600);
    try {
      await file.truncate(partial.committed);
      await file.datasync();
    } finally {
      await file.close();
    }
    if (!known) await this.#partials.put(partial.fragment.id, partial);
    await this.#digestUpTo(partial);
    return partial;
  }

  /** Makes the running SHA-256 of an upload cover its committed bytes, reading them back unless it already does. */
  async #digestUpTo(partial: PartialUpload): Promise<void> {
    const id = partial.fragment.id;
    if (this.#digests.get(id)?.offset === partial.committed) return;
    this.#digests.delete(id);
    const hash = createHash("sha256");
    if (partial.committed > 0) {
      for await (const chunk of createReadStream(this.#partialPath(id), { start: 0, end: partial.committed - 1, highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
    }
    this.#digests.set(id, { hash, offset: partial.committed });
  }

  /** Opens the partial file of an upload for {@link writeChunk}. */
  openPartial(id: string): Promise<FileHandle> {
    return open(this.#partialPath(id), "r+");
  }

  /** Writes a chunk at the committed offset, makes it durable, then records the new offset. */
  async writeChunk(file: FileHandle, partial: PartialUpload, data: Uint8Array): Promise<void> {
    let written = 0;
    while (written < data.byteLength) {
      const { bytesWritten } = await file.write(data, written, data.byteLength - written, partial.committed + written);
      written += bytesWritten;
    }
    await file.datasync();
    const digest = this.#digests.get(partial.fragment.id);
    if (digest?.offset === partial.committed) {
      digest.hash.update(data);
      digest.offset += data.byteLength;
    } else {
      this.#digests.delete(partial.fragment.id);
    }
    partial.committed += data.byteLength;
    partial.updatedMs = Date.now();
    await this.#partials.put(partial.fragment.id, partial);
  }

  /**
   * Checks a fully uploaded fragment against its SHA-256, moves it into place and records
   * it as held. A mismatch drops the partial file, so that the next attempt starts again
   * from 0. The digest is the running one of the bytes written (those committed before this
   * process resumed the upload were read back from the file); the file is read whole only
   * when the running digest does not cover it. The upload stays recorded until
   * {@link settleUpload}: a crash before then is finished by {@link open}.
   */
  async completeUpload(partial: PartialUpload): Promise<HeldFragment> {
    const path = this.#partialPath(partial.fragment.id);
    const digest = this.#digests.get(partial.fragment.id);
    this.#digests.delete(partial.fragment.id);
    const sha256 = digest?.offset === partial.fragment.size ? digest.hash.digest("hex") : await sha256Of(path);
    if (sha256 !== partial.fragment.sha256) {
      await this.discardUpload(partial.fragment.id);
      throw new VmtreeError("data_loss", `fragment ${partial.fragment.id} arrived whole but its SHA-256 is ${sha256}, not ${partial.fragment.sha256}; it is sent again from the start`);
    }
    await rename(path, this.pathOf(partial.fragment.id));
    return this.#recordHeld(partial);
  }

  /** Forgets a completed upload, once what its arrival triggers (audit, the hop up) is done. */
  async settleUpload(id: string): Promise<void> {
    await this.#partials.del(assertFragmentId(id));
  }

  async #recordHeld(partial: PartialUpload): Promise<HeldFragment> {
    const held: HeldFragment = { fragment: partial.fragment, from: partial.from, receivedMs: Date.now() };
    await this.#held.put(partial.fragment.id, held);
    return held;
  }

  async discardUpload(id: string): Promise<void> {
    this.#digests.delete(id);
    await this.#partials.del(assertFragmentId(id));
    await rm(this.#partialPath(id), { force: true });
  }

  /** Drops uploads untouched since `beforeMs`, and stray files of the partial folder; returns those dropped. */
  async expireUploads(beforeMs: number): Promise<PartialUpload[]> {
    const expired = (await this.partials()).filter((p) => p.updatedMs < beforeMs);
    for (const partial of expired) await this.discardUpload(partial.fragment.id);
    const live = new Set((await this.partials()).map((p) => `${p.fragment.id}.part`));
    for (const name of await readdir(this.#partialDir)) {
      if (!live.has(name) && !name.startsWith("add-")) await rm(join(this.#partialDir, name), { force: true });
    }
    return expired;
  }
}

async function assertRegularFile(path: string, named: string): Promise<void> {
  if (!(await lstat(path)).isFile()) throw new VmtreeError("invalid_argument", `the recording ${named} is not a regular file`);
}

export function sha256Of(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path, { highWaterMark: 1024 * 1024 })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
