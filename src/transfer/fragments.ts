import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, rename, rm, stat } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import type { Fragment, FragmentFailure, FragmentRequest, FragmentRequestOutcome } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { assertSiteId, isInSubtree } from "../pki/site-id.ts";
import type { NodeStore } from "../store/node-store.ts";
import type { Logger } from "../util/log.ts";
import { FragmentArchive, sha256Of, type HeldFragment, type PartialUpload } from "./fragment-archive.ts";
import { checkFragment, fragmentIdFor, isTime, recorderFileName, type Priority } from "./fragment-meta.ts";
import { checkFailure, checkOutcome, checkRequest, FragmentRequests, MAX_REASON_CHARS, type RequestRecord } from "./fragment-requests.ts";
import type { ByteLimiter } from "./fragment-upload.ts";
import { TransferQueue, type TransferView } from "./transfer-queue.ts";
import { UploadReceiver } from "./upload-receiver.ts";

const DAY_MS = 86_400_000;
/** recordings are kept 30 days, incident recordings at least 7 years. */
export const RETENTION_DAYS = 30;
export const INCIDENT_RETENTION_DAYS = 7 * 366;
/** requests and their answers are kept at least 24 months. */
export const REQUEST_RETENTION_DAYS = 2 * 366;
/** An upload untouched this long is abandoned: its partial file is dropped. */
export const PARTIAL_EXPIRY_MS = 7 * DAY_MS;

/** Options of {@link Fragments}. */
export interface FragmentsOptions {
  site: string;
  /** Absent on the root. */
  parentSite?: string;
  store: NodeStore;
  /** The archive folder (`DIR/fragments`). */
  dir: string;
  audit: AuditLog;
  log: Logger;
  limiter: ByteLimiter;
  concurrency: number;
  /** Whether a site is an enrolled child of this node. */
  isChild: (site: string) => Promise<boolean>;
}

/** What `fragments add` registers. */
export interface NewRecording {
  cameraId: string;
  filePath: string;
  startMs: number;
  endMs: number;
  incident: boolean;
}

/**
 * A node's recordings and the copies it holds of its subtree's: registration, requests
 * routed down the tree and answered by the owning site, uploads to the parent (requested
 * fragments hop by hop, incident fragments without a request), and retention (R-13, R-28…30).
 */
export class Fragments {
  readonly archive: FragmentArchive;
  readonly requests: FragmentRequests;
  readonly receiver: UploadReceiver;
  /** Uploads to the parent; absent on the root. */
  readonly queue: TransferQueue | undefined;
  readonly #options: FragmentsOptions;

  constructor(options: FragmentsOptions) {
    this.#options = options;
    this.archive = new FragmentArchive(options.store, options.dir);
    this.requests = new FragmentRequests(options.store);
    this.receiver = new UploadReceiver(this.archive, this.requests, (held, partial) => this.#received(held, partial));
    this.queue = options.parentSite
      ? new TransferQueue({
          store: options.store,
          archive: this.archive,
          limiter: options.limiter,
          concurrency: options.concurrency,
          log: options.log.child("transfers"),
          onSent: (job) => this.#audit("node", "fragment.send", job.fragmentId, "ok", { to: options.parentSite, priority: job.priority, request: job.requestId, attempts: job.attempts, resent_bytes: job.resent }),
          onFailed: async (job, reason) => {
            await this.#audit("node", "fragment.send", job.fragmentId, "failed", { to: options.parentSite, reason: reason.rawMessage });
            // The requester would wait for ever for a fragment that can never come.
            if (job.requestId) await this.requests.fail({ request_id: job.requestId, fragment_id: job.fragmentId, message: `${options.site} cannot send it: ${reason.rawMessage}`.slice(0, MAX_REASON_CHARS), failed_ms: Date.now() });
          },
        })
      : undefined;
  }

  /** Opens the archive; an upload a crash interrupted once it was in place is audited and passed on up now. */
  async open(): Promise<void> {
    for (const partial of await this.archive.open()) {
      const held = await this.archive.get(partial.fragment.id);
      if (held) await this.#received(held, partial);
      await this.archive.settleUpload(partial.fragment.id);
    }
  }

  /** The link to the parent is up (or down, with `undefined`): uploads run over it. */
  attach(client: ParentServiceClient | undefined): void {
    if (client) this.queue?.attach(client);
    else this.queue?.detach();
  }

  async close(): Promise<void> {
    await this.queue?.close();
  }

  /** Registers a recording of this site; an incident recording is queued for the parent at once, and again when added again. */
  async add(recording: NewRecording): Promise<{ fragment: Fragment; alreadyPresent: boolean }> {
    const { site } = this.#options;
    if (!isAbsolute(recording.filePath)) throw new VmtreeError("invalid_argument", `the recording's path must be absolute, not ${recording.filePath}`);
    const fileName = recorderFileName(recording.filePath);
    if (!isTime(recording.startMs) || !isTime(recording.endMs) || recording.endMs < recording.startMs) {
      throw new VmtreeError("invalid_argument", `the recording's end ${new Date(recording.endMs).toISOString()} is before its start ${new Date(recording.startMs).toISOString()}`);
    }
    const { held, alreadyPresent } = await this.archive.addOwn(recording.filePath, (size, sha256) => {
      const fragment: Fragment = {
        id: "", site, camera_id: recording.cameraId, start_ms: recording.startMs, end_ms: recording.endMs,
        size, sha256, incident: recording.incident, file_name: fileName, added_ms: Date.now(),
      };
      fragment.id = fragmentIdFor(fragment);
      return checkFragment(fragment, `recording ${recording.filePath}`);
    });
    // Also when already present: a crash between taking the recording and queueing it is
    // mended by the recorder adding it again (a job for a fragment the parent holds ends at its first answer).
    if (held.fragment.incident) await this.queue?.enqueue(held.fragment.id, "incident", "");
    return { fragment: held.fragment, alreadyPresent };
  }

  /** Fragments held here, of `site`'s subtree when given, oldest first. */
  async list(site?: string): Promise<HeldFragment[]> {
    const all = await this.archive.list();
    return all.filter((h) => site === undefined || isInSubtree(h.fragment.site, site)).sort((a, b) => a.fragment.start_ms - b.fragment.start_ms || (a.fragment.id < b.fragment.id ? -1 : 1));
  }

  /** Copies a fragment to `outPath` (which must not exist), checked against its SHA-256 first. */
  async export(id: string, outPath: string): Promise<Fragment> {
    const held = await this.archive.get(id);
    if (!held) throw new VmtreeError("not_found", `fragment ${id} is not held here; \`vmtree fragments list\` shows those that are`);
    if (!isAbsolute(outPath)) throw new VmtreeError("invalid_argument", `--out must be an absolute path, not ${outPath}`);
    if (await stat(outPath).then(() => true, () => false)) throw new VmtreeError("already_exists", `${outPath} exists; choose another --out`);
    const folder = await stat(dirname(outPath)).catch(() => undefined);
    if (!folder?.isDirectory()) throw new VmtreeError("failed_precondition", `cannot write ${outPath}: ${dirname(outPath)} is not a directory; create it or choose another --out`);
    const sha256 = await sha256Of(this.archive.pathOf(id));
    if (sha256 !== held.fragment.sha256) throw new VmtreeError("data_loss", `the archive's copy of fragment ${id} is damaged (SHA-256 ${sha256}, recorded ${held.fragment.sha256})`);
    // A fresh name, created exclusively: a copy never follows a link someone planted there.
    const staging = join(dirname(outPath), `.${recorderFileName(outPath)}.${randomBytes(6).toString("hex")}.vmtree-export`);
    try {
      await copyFile(this.archive.pathOf(id), staging, constants.COPYFILE_EXCL);
      await rename(staging, outPath);
    } catch (error) {
      await rm(staging, { force: true });
      throw new VmtreeError("failed_precondition", `cannot write ${outPath}: ${(error as Error).message}`, { cause: error });
    }
    return held.fragment;
  }

  /** Makes a reasoned request for recordings of a site below this node and routes it down. */
  async request(fields: Omit<FragmentRequest, "id" | "requester" | "requested_ms">): Promise<FragmentRequest> {
    const { site } = this.#options;
    assertSiteId(fields.site);
    if (fields.site === site) {
      throw new VmtreeError("invalid_argument", `--site ${site} is this node: its recordings are here already (vmtree fragments list)`);
    }
    if (!isInSubtree(fields.site, site)) {
      throw new VmtreeError("invalid_argument", `--site ${fields.site} is not below ${site}: a node can request only from sites of its subtree`);
    }
    const request = checkRequest({ ...fields, id: await this.requests.nextId(site), requester: site, requested_ms: Date.now() }, "request");
    const via = await this.#route(request);
    if (!via) {
      await this.requests.record({ request, via: "", fromParent: false, state: "pending", delivered: [] });
      await this.requests.answer(notFound(request, `${fields.site} is not in the subtree of ${site} as enrolled here`));
      return request;
    }
    await this.requests.record({ request, via, fromParent: false, state: "pending", delivered: [] });
    return request;
  }

  /**
   * A request from the parent: answered from this node's archive when it is the owning
   * site (the fragments found are queued for the parent), otherwise routed on down. A new
   * outcome is announced by `requests`' `answered` event; for a request known before (the
   * parent sends again what it has no outcome for) the known outcome is returned instead.
   */
  async fromParent(received: FragmentRequest): Promise<FragmentRequestOutcome | undefined> {
    const request = checkRequest(received, "request from the parent");
    const { site } = this.#options;
    if (!isInSubtree(request.site, site)) throw new VmtreeError("permission_denied", `request ${request.id} is for ${request.site}, outside the subtree of ${site}`);
    const known = await this.requests.get(request.id);
    if (known) return known.outcome;
    if (request.site !== site) {
      const via = await this.#route(request);
      await this.requests.record({ request, via: via ?? "", fromParent: true, state: "pending", delivered: [] });
      if (!via) await this.requests.answer(notFound(request, `${request.site} is not enrolled below ${site}`));
      return undefined;
    }
    await this.requests.record({ request, via: "", fromParent: true, state: "pending", delivered: [] });
    const found = (await this.list(site)).filter((h) => matches(h.fragment, request)).map((h) => h.fragment);
    const outcome: FragmentRequestOutcome = found.length === 0
      ? notFound(request, `no recording of camera ${request.camera_id} at ${site} between ${iso(request.from_ms)} and ${iso(request.to_ms)}`)
      : { request_id: request.id, state: "found", fragments: found, message: `${found.length} fragment(s) on their way`, answered_ms: Date.now() };
    for (const fragment of found) await this.queue?.enqueue(fragment.id, "requested", request.id);
    await this.requests.answer(outcome, found.map((f) => f.id));
    await this.#audit("node", "fragment.request.answer", request.id, outcome.state === "found" ? "ok" : "refused", { site: request.site, camera: request.camera_id, state: outcome.state, fragments: found.length, reason: request.reason, requested_by: request.requested_by });
    return undefined;
  }

  /** An outcome from the child a request was routed to; returns the record when it is to be sent up. */
  async fromChild(child: string, outcome: FragmentRequestOutcome): Promise<RequestRecord | undefined> {
    const record = await this.requests.get(outcome.request_id);
    checkOutcome(outcome, record, child);
    const held = new Set((await this.archive.list()).map((h) => h.fragment.id));
    const updated = await this.requests.answer(outcome, outcome.fragments.map((f) => f.id).filter((id) => held.has(id)));
    if (updated && !updated.fromParent) {
      await this.#audit(`site:${child}`, "fragment.request.answer", outcome.request_id, outcome.state === "found" ? "ok" : "refused", { state: outcome.state, fragments: outcome.fragments.length, message: outcome.message });
    }
    return updated?.fromParent ? updated : undefined;
  }

  /** A fragment of a request routed to `child` could not be sent up; relayed on up when the parent asked. */
  async failedAtChild(child: string, failure: FragmentFailure): Promise<void> {
    const record = await this.requests.get(failure.request_id);
    checkFailure(failure, record, child);
    // It arrived here after all (an earlier attempt): nothing failed for this node's requester.
    if (record!.delivered.includes(failure.fragment_id)) return;
    const updated = await this.requests.fail(failure);
    if (updated && !updated.fromParent) {
      await this.#audit(`site:${child}`, "fragment.request.fail", failure.request_id, "failed", { fragment: failure.fragment_id, message: failure.message });
    }
  }

  /** Uploads to the parent and from children, for `vmtree transfers`. */
  async transfers(): Promise<{ up: TransferView[]; down: ReturnType<UploadReceiver["incoming"]> }> {
    return { up: (await this.queue?.list()) ?? [], down: this.receiver.incoming() };
  }

  /**
   * Deletes what retention no longer keeps and abandoned uploads; audits each.
   * Once `signal` aborts it stops before the next deletion, so that a node stops promptly.
   */
  async sweep(now = Date.now(), signal?: AbortSignal): Promise<void> {
    for (const held of await this.archive.list()) {
      if (signal?.aborted) return;
      const days = held.fragment.incident ? INCIDENT_RETENTION_DAYS : RETENTION_DAYS;
      if (held.fragment.end_ms + days * DAY_MS > now) continue;
      await this.archive.remove(held.fragment.id);
      await this.#audit("node", "fragment.expire", held.fragment.id, "ok", { site: held.fragment.site, camera: held.fragment.camera_id, end_ms: held.fragment.end_ms, incident: held.fragment.incident, retention_days: days });
    }
    if (signal?.aborted) return;
    for (const record of await this.requests.expire(now - REQUEST_RETENTION_DAYS * DAY_MS)) {
      await this.#audit("node", "fragment.request.destroy", record.request.id, "ok", { requested_ms: record.request.requested_ms, retention_days: REQUEST_RETENTION_DAYS });
    }
    if (signal?.aborted) return;
    for (const partial of await this.archive.expireUploads(now - PARTIAL_EXPIRY_MS)) {
      await this.#audit("node", "fragment.upload.expire", partial.fragment.id, "ok", { from: partial.from, committed: partial.committed, size: partial.fragment.size });
    }
  }

  async #received(held: HeldFragment, partial: PartialUpload): Promise<void> {
    const { fragment } = held;
    await this.#audit(`site:${partial.from}`, "fragment.receive", fragment.id, "ok", { site: fragment.site, camera: fragment.camera_id, size: fragment.size, sha256: fragment.sha256, priority: partial.priority, request: partial.requestId });
    const record = partial.requestId ? await this.requests.delivered(partial.requestId, fragment.id) : undefined;
    if (fragment.incident || record?.fromParent) await this.queue?.enqueue(fragment.id, fragment.incident ? "incident" : "requested", partial.requestId);
  }

  /** The child of this node on the way to a request's site, if it is enrolled. */
  async #route(request: FragmentRequest): Promise<string | undefined> {
    const own = this.#options.site;
    const next = request.site.split(".").slice(0, own.split(".").length + 1).join(".");
    return (await this.#options.isChild(next)) ? next : undefined;
  }

  async #audit(actor: string, action: string, target: string, result: "ok" | "refused" | "failed", details: Record<string, unknown>): Promise<void> {
    await this.#options.audit.append({ actor, action, target, result, details }).catch((error: unknown) => {
      this.#options.log.warn("audit append failed", { action, reason: VmtreeError.from(error).message });
    });
  }
}

function matches(fragment: Fragment, request: FragmentRequest): boolean {
  return fragment.camera_id === request.camera_id && fragment.start_ms <= request.to_ms && fragment.end_ms >= request.from_ms;
}

function notFound(request: FragmentRequest, message: string): FragmentRequestOutcome {
  return { request_id: request.id, state: "not_found", fragments: [], message, answered_ms: Date.now() };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export type { Priority };
