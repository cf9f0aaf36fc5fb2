import PQueue from "p-queue";
import { VmtreeError } from "../errors.ts";
import type { Fragment } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import type { NodeStore } from "../store/node-store.ts";
import { Backoff, delay } from "../util/backoff.ts";
import type { Logger } from "../util/log.ts";
import { sha256Of, type FragmentArchive } from "./fragment-archive.ts";
import { PRIORITY_RANK, type Priority } from "./fragment-meta.ts";
import { uploadFragment, type ByteLimiter } from "./fragment-upload.ts";

/** A fragment to send to the parent, kept in the store until the parent has it. */
export interface TransferJob {
  fragmentId: string;
  priority: Priority;
  requestId: string;
  createdMs: number;
  /** Orders jobs made in the same millisecond, so that they resume after a restart in the order they came. */
  seq: number;
  attempts: number;
  /** The highest offset any attempt sent (acknowledged or not), so that bytes sent again are counted across restarts. */
  sent: number;
  committed: number;
  resent: number;
  lastError: string;
  /** Set when the job cannot succeed (its file is gone or damaged): kept for the view, not retried. */
  failed: boolean;
}

/** A job as the transfers view shows it. */
export interface TransferView extends TransferJob {
  total: number;
  state: "queued" | "sending" | "waiting" | "done" | "failed";
  /** Bytes per second over the last few seconds of this attempt. */
  rate: number;
}

/**
 * Fragments one lane sends at once. Both lanes full make twice as many uploads, which the
 * parent allows (64 per child).
 */
export const MAX_TRANSFER_CONCURRENCY = 32;
/** Jobs made by this process so far; with `createdMs` it keeps jobs of one millisecond in order. */
let jobsMade = 0;
const RATE_WINDOW_MS = 5_000;
const MIN_RATE_SPAN_MS = 1_000;
const DONE_KEPT = 100;

/** Options of {@link TransferQueue}. */
export interface TransferQueueOptions {
  store: NodeStore;
  archive: FragmentArchive;
  limiter: ByteLimiter;
  /** Fragments sent at once. */
  concurrency: number;
  log: Logger;
  /** Called once the parent holds a fragment. */
  onSent: (job: TransferJob) => Promise<void>;
  /** Called when a job fails for good. */
  onFailed: (job: TransferJob, reason: VmtreeError) => Promise<void>;
}

/**
 * The fragments waiting to go to the parent, persisted so that they survive a restart,
 * sent up to `concurrency` at a time in priority order (incident, requested, routine;
 * oldest first within each) while the link is up. Incidents have `concurrency` places of
 * their own, so that one never waits for a requested or routine upload to end, and their
 * bytes go first at the link's limiter. A failed attempt is retried with
 * backoff and resumes from the parent's committed offset.
 */
export class TransferQueue {
  readonly #options: TransferQueueOptions;
  readonly #jobs;
  /** Incidents, and the requested and routine uploads. */
  readonly #lanes: { incident: PQueue; other: PQueue };
  /** Jobs added to the p-queue and not yet finished, so that none is run twice at once. */
  readonly #scheduled = new Set<string>();
  /** Jobs of {@link #scheduled} that wait for a place: the ones whose priority can still change. */
  readonly #waiting = new Set<string>();
  readonly #active = new Map<string, { samples: { ms: number; bytes: number }[] }>();
  readonly #done: TransferView[] = [];
  #client: ParentServiceClient | undefined;
  #link: AbortController | undefined;
  #closed = false;

  constructor(options: TransferQueueOptions) {
    if (!Number.isSafeInteger(options.concurrency) || options.concurrency < 1 || options.concurrency > MAX_TRANSFER_CONCURRENCY) {
      throw new VmtreeError("invalid_argument", `transfer concurrency must be 1 to ${MAX_TRANSFER_CONCURRENCY}, not ${options.concurrency}`);
    }
    this.#options = options;
    this.#jobs = options.store.section<TransferJob>("transfer-jobs");
    this.#lanes = { incident: new PQueue({ concurrency: options.concurrency }), other: new PQueue({ concurrency: options.concurrency }) };
  }

  /**
   * Adds a fragment to send; idempotent. A job already queued keeps its progress and takes
   * the higher of the two priorities.
   */
  async enqueue(fragmentId: string, priority: Priority, requestId: string): Promise<void> {
    const known = await this.#jobs.get(fragmentId);
    if (known && !known.failed) {
      if (PRIORITY_RANK[priority] <= PRIORITY_RANK[known.priority]) return;
      await this.#jobs.put(fragmentId, { ...known, priority, requestId: known.requestId || requestId });
      // A job still waiting moves up among the others waiting in its lane, or it would go after
      // every job of its old priority; a job raised to incident stays in its lane, at its head.
      if (this.#waiting.has(fragmentId)) this.#laneOf(known.priority).setPriority(fragmentId, PRIORITY_RANK[priority]);
      return;
    }
    jobsMade += 1;
    const job: TransferJob = { fragmentId, priority, requestId, createdMs: Date.now(), seq: jobsMade, attempts: 0, sent: 0, committed: 0, resent: 0, lastError: "", failed: false };
    await this.#jobs.put(fragmentId, job);
    this.#schedule(job);
  }

  /** The link is up: jobs run over `client`. */
  attach(client: ParentServiceClient): void {
    this.detach();
    this.#client = client;
    this.#link = new AbortController();
    void this.#scheduleAll();
  }

  /** The link is down: attempts in flight stop; every job stays queued. */
  detach(): void {
    this.#link?.abort(new VmtreeError("unavailable", "the parent link is down"));
    this.#link = undefined;
    this.#client = undefined;
  }

  async list(): Promise<TransferView[]> {
    const jobs = await this.#jobs.values().all();
    const views = await Promise.all(jobs.map((job) => this.#view(job)));
    return [...views, ...this.#done];
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.detach();
    const lanes = [this.#lanes.incident, this.#lanes.other];
    for (const lane of lanes) lane.clear();
    await Promise.all(lanes.map((lane) => lane.onIdle()));
  }

  /**
   * Schedules every stored job in the order they are to run: the store lists them by
   * fragment id, and p-queue starts the first ones added at once whatever their priority.
   */
  async #scheduleAll(): Promise<void> {
    const jobs = await this.#jobs.values().all();
    jobs.sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || a.createdMs - b.createdMs || a.seq - b.seq);
    for (const job of jobs) this.#schedule(job);
  }

  #schedule(job: TransferJob): void {
    const id = job.fragmentId;
    if (this.#closed || job.failed || !this.#client || this.#scheduled.has(id)) return;
    this.#scheduled.add(id);
    this.#waiting.add(id);
    const run = () => {
      this.#waiting.delete(id);
      return this.#run(id);
    };
    this.#laneOf(job.priority)
      .add(run, { priority: PRIORITY_RANK[job.priority], id })
      // A store that fails under a run (a full disk, say) leaves the job for the next link; it must not end the node.
      .catch((reason: unknown) => this.#options.log.error("fragment upload stopped", { fragment: id, reason: VmtreeError.from(reason).message }))
      .finally(() => {
        this.#waiting.delete(id);
        this.#scheduled.delete(id);
      });
  }

  /** Why the archived copy of `fragment` can never arrive intact, if it cannot. */
  async #damage(fragment: Fragment): Promise<VmtreeError | undefined> {
    const sha256 = await sha256Of(this.#options.archive.pathOf(fragment.id));
    if (sha256 === fragment.sha256) return undefined;
    return new VmtreeError("data_loss", `fragment ${fragment.id} is damaged here: its file's SHA-256 is ${sha256}, not the ${fragment.sha256} recorded when it was registered`);
  }

  #laneOf(priority: Priority): PQueue {
    return priority === "incident" ? this.#lanes.incident : this.#lanes.other;
  }

  /** Runs a job's attempts while its link stays up; retries a failed attempt with backoff. */
  async #run(fragmentId: string): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000, jitter: 0.3 });
    while (this.#client && this.#link && !this.#link.signal.aborted) {
      const client = this.#client;
      const signal = this.#link.signal;
      const job = await this.#jobs.get(fragmentId);
      if (!job || job.failed) return;
      const held = await this.#options.archive.get(fragmentId);
      if (!held) return this.#fail(job, new VmtreeError("not_found", `fragment ${fragmentId} is no longer held here`));
      job.attempts += 1;
      const progress = { samples: [{ ms: Date.now(), bytes: job.committed }] };
      this.#active.set(fragmentId, progress);
      // Bytes this attempt sent again, kept whether it succeeds or fails.
      let resentNow = 0;
      try {
        await uploadFragment({
          client,
          fragment: held.fragment,
          path: this.#options.archive.pathOf(fragmentId),
          priority: job.priority,
          requestId: job.requestId,
          limiter: this.#options.limiter,
          signal,
          sentBefore: job.sent,
          // Not synced: a process crash keeps the mark, only a machine crash may lose the last ones.
          onSending: async ({ committed, sent, resent }) => {
            Object.assign(job, { committed, sent: Math.max(job.sent, sent) });
            resentNow = resent;
            await this.#jobs.put(fragmentId, { ...job, resent: job.resent + resentNow });
          },
          onProgress: ({ committed }) => {
            job.committed = committed;
            progress.samples.push({ ms: Date.now(), bytes: committed });
            while (progress.samples.length > 2 && progress.samples[0]!.ms < Date.now() - RATE_WINDOW_MS) progress.samples.shift();
          },
        });
        job.resent += resentNow;
        job.committed = held.fragment.size;
        await this.#jobs.del(fragmentId);
        // The errors of earlier attempts are history once the fragment arrived.
        this.#remember({ ...job, lastError: "", total: held.fragment.size, state: "done", rate: 0 });
        await this.#options.onSent(job);
        return;
      } catch (reason) {
        job.resent += resentNow;
        const error = VmtreeError.from(reason);
        job.lastError = error.message;
        await this.#jobs.put(fragmentId, job);
        // The link went down. Not a return: it may be up again already, and this job, still
        // scheduled, was passed over by that link's scheduleAll; the loop's test decides.
        if (signal.aborted) continue;
        if (error.code === "not_found" || (error.code === "data_loss" && error.message.includes("is shorter than"))) return this.#fail(job, error);
        // The parent found the whole file wrong: sending it again helps only if the copy here is sound.
        if (error.code === "data_loss") {
          const damage = await this.#damage(held.fragment);
          if (damage) return this.#fail(job, damage);
        }
        this.#options.log.warn("fragment upload failed; retrying", { fragment: fragmentId, attempt: job.attempts, reason: error.message });
        await delay(backoff.next(), signal).catch(() => undefined);
      } finally {
        this.#active.delete(fragmentId);
      }
    }
  }

  async #fail(job: TransferJob, reason: VmtreeError): Promise<void> {
    job.failed = true;
    job.lastError = reason.message;
    await this.#jobs.put(job.fragmentId, job);
    this.#options.log.error("fragment upload failed for good", { fragment: job.fragmentId, reason: reason.message });
    await this.#options.onFailed(job, reason);
  }

  #remember(view: TransferView): void {
    // A fragment sent again (asked for once more after it arrived) shows once, as it ended last.
    const earlier = this.#done.findIndex((done) => done.fragmentId === view.fragmentId);
    if (earlier >= 0) this.#done.splice(earlier, 1);
    this.#done.unshift(view);
    this.#done.length = Math.min(this.#done.length, DONE_KEPT);
  }

  async #view(job: TransferJob): Promise<TransferView> {
    const held = await this.#options.archive.get(job.fragmentId);
    const active = this.#active.get(job.fragmentId);
    const state: TransferView["state"] = job.failed ? "failed" : active ? "sending" : this.#client ? "queued" : "waiting";
    return { ...job, total: held?.fragment.size ?? 0, state, rate: active ? rateOf(active.samples, Date.now()) : 0 };
  }
}

/**
 * Bytes per second acknowledged over the samples' span up to `now`, and over at least a
 * second: chunks are acknowledged one at a time, and the first goes at once, so a shorter
 * span would show a rate above the cap at the start and a rate frozen between chunks.
 */
export function rateOf(samples: readonly { ms: number; bytes: number }[], now: number): number {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last) return 0;
  return ((last.bytes - first.bytes) * 1000) / Math.max(now - first.ms, MIN_RATE_SPAN_MS);
}
