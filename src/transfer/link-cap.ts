import type { NodeStore } from "../store/node-store.ts";
import type { Logger } from "../util/log.ts";
import { formatBandwidth, nextChange, scheduledCap, type BandwidthSchedule } from "./bandwidth.ts";
import type { RateLimiter } from "./rate-limiter.ts";

export type CapSource = "config" | "schedule" | "parent" | "none";

/** Where the caps come from: the node's config, its time-of-day schedule, and what the parent set. */
export interface LinkCapOptions {
  limiter: RateLimiter;
  store: NodeStore;
  /** From `bandwidth` in node.json, bits per second. */
  configured?: number;
  schedule?: BandwidthSchedule;
  log: Logger;
  /** The wall clock the schedule is read on, milliseconds since the epoch; tests inject their own. */
  now?: () => number;
}

const PARENT_KEY = "parent";

/**
 * The cap in force on the parent link, applied to its limiter at once (also to transfers
 * already running): the lowest of the configured cap (replaced by the schedule's within
 * one of its windows) and the cap the parent set, which is kept in the store so that it
 * holds while the link is down and after a restart. A parent can only lower the cap.
 */
export class LinkCap {
  readonly #options: LinkCapOptions;
  readonly #now: () => number;
  readonly #section;
  #parentCap: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #started = false;

  constructor(options: LinkCapOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#section = options.store.section<{ bits_per_second: number; set_ms: number }>("uplink-limit");
  }

  async start(): Promise<void> {
    await this.#load();
    this.#started = true;
    this.#apply();
  }

  close(): void {
    clearTimeout(this.#timer);
  }

  /** The parent set a cap (0 lifts it). */
  async setByParent(bitsPerSecond: number, setMs: number): Promise<void> {
    await this.#section.put(PARENT_KEY, { bits_per_second: bitsPerSecond, set_ms: setMs });
    this.#parentCap = bitsPerSecond > 0 ? bitsPerSecond : undefined;
    this.#apply();
  }

  /**
   * {@link current}, also on a node that is not serving (a CLI command on its store): then the
   * parent's last cap is read from the store, since nothing has loaded it.
   */
  async inForce(): Promise<{ bitsPerSecond: number; source: CapSource }> {
    if (!this.#started) await this.#load();
    return this.current();
  }

  async #load(): Promise<void> {
    const saved = await this.#section.get(PARENT_KEY);
    this.#parentCap = saved && saved.bits_per_second > 0 ? saved.bits_per_second : undefined;
  }

  /** The cap in force, bits per second (Infinity for none), and where it comes from. */
  current(now = new Date(this.#now())): { bitsPerSecond: number; source: CapSource } {
    const scheduled = this.#options.schedule ? scheduledCap(this.#options.schedule, now) : undefined;
    const local = scheduled ?? this.#options.configured;
    const localSource: CapSource = scheduled !== undefined ? "schedule" : "config";
    if (this.#parentCap !== undefined && (local === undefined || this.#parentCap < local)) return { bitsPerSecond: this.#parentCap, source: "parent" };
    if (local !== undefined && Number.isFinite(local)) return { bitsPerSecond: local, source: localSource };
    return { bitsPerSecond: Infinity, source: "none" };
  }

  #apply(): void {
    clearTimeout(this.#timer);
    const now = this.#now();
    const { bitsPerSecond, source } = this.current(new Date(now));
    if (bitsPerSecond !== this.#options.limiter.rate) {
      this.#options.limiter.setRate(bitsPerSecond);
      this.#options.log.info("fragment bandwidth cap", { cap: formatBandwidth(bitsPerSecond), source });
    }
    const next = this.#options.schedule ? nextChange(this.#options.schedule, new Date(now)) : undefined;
    if (next) {
      // Re-checked at least hourly, so that a clock change is caught up.
      this.#timer = setTimeout(() => this.#apply(), Math.min(Math.max(next.getTime() - now, 0) + 50, 3_600_000));
      this.#timer.unref();
    }
  }
}
