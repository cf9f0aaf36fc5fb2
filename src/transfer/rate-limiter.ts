import { VmtreeError } from "../errors.ts";

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** The cap in bits per second; Infinity for none. */
  bitsPerSecond: number;
  /** Milliseconds on a monotonic clock; tests inject their own. */
  now?: () => number;
}

/**
 * How much of the rate a late timer, or an event loop stalled by other work, may bank for
 * the waiters it kept waiting. Without it every grant would lose its timer's lateness (a
 * millisecond or more, tens of them on a busy machine), which at high rates is a
 * noticeable share of the throughput. What is caught up never exceeds the cap over any
 * second: see {@link WINDOW_MS}.
 */
const LATE_BANK_MS = 250;
/**
 * Grants stop while those of the last second exceed the rate, so that catching up after a
 * stall cannot make a burst: over any second the limiter lets through at most the rate
 * plus one take.
 */
const WINDOW_MS = 1_000;
// setTimeout fires at once for delays above 2^31-1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Waiter {
  readonly bytes: number;
  readonly rank: number;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

function checkRate(bitsPerSecond: number): number {
  if (typeof bitsPerSecond !== "number" || !(bitsPerSecond > 0)) {
    throw new VmtreeError(
      "invalid_argument",
      `bitsPerSecond: expected a rate greater than 0 bits per second, or Infinity for no cap, got ${String(bitsPerSecond)}`,
    );
  }
  return bitsPerSecond;
}

function closedError(): VmtreeError {
  return new VmtreeError("aborted", "rate limiter closed");
}

/**
 * The one cap of a link: every byte of fragment traffic over it, payload, framing and
 * retries alike, goes through the same limiter, so that parallel transfers share the
 * cap instead of each getting it.
 *
 * It keeps a debt of bytes sent ahead of the rate, which the rate pays off as time
 * passes. A caller may go once the debt is paid (≤ 0) and then adds its bytes, so over
 * any span of T seconds it grants at most rate × T plus the largest single take, and
 * the long-run throughput is the rate exactly. A waiter of a higher rank goes before
 * those of lower ranks (an incident's bytes before a routine transfer's); waiters of one
 * rank go in the order they came, so that one transfer cannot starve another of its rank.
 */
export class RateLimiter {
  readonly #now: () => number;
  #bitsPerSecond: number;
  #debt = 0;
  #settledAt: number;
  #queue: Waiter[] = [];
  // One timer for the head of the queue: the others cannot go before it anyway.
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #bytesGranted = 0;
  /** Grants of the last {@link WINDOW_MS}, oldest first, and the bytes they hold. */
  #recent: { at: number; bytes: number }[] = [];
  #recentBytes = 0;

  constructor(options: RateLimiterOptions) {
    this.#bitsPerSecond = checkRate(options.bitsPerSecond);
    if (options.now !== undefined && typeof options.now !== "function") {
      throw new VmtreeError("invalid_argument", `now: expected a function returning milliseconds, got ${typeof options.now}`);
    }
    this.#now = options.now ?? (() => performance.now());
    this.#settledAt = this.#now();
  }

  /** The cap in bits per second; Infinity for none. */
  get rate(): number {
    return this.#bitsPerSecond;
  }

  /** All bytes let through since the limiter was made. */
  get bytesGranted(): number {
    return this.#bytesGranted;
  }

  /** How many takes are waiting for their turn. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Applies a new cap at once, also to the takes already waiting. */
  setRate(bitsPerSecond: number): void {
    const rate = checkRate(bitsPerSecond);
    // The debt so far was paid off at the old rate; from now on the new one pays.
    this.#settle();
    this.#bitsPerSecond = rate;
    // No cap means no debt, so that every waiter goes now rather than on the next timer.
    if (rate === Infinity) this.#debt = 0;
    this.#pump();
  }

  /**
   * Resolves once `bytes` may be sent, after the waiters of a higher `rank` and those of
   * the same rank that came first. Rejects with the signal's reason if it aborts first, or
   * as aborted once the limiter is closed. A zero-byte take never waits.
   */
  async take(bytes: number, signal?: AbortSignal, rank = 0): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new VmtreeError("invalid_argument", `bytes: expected a non-negative safe integer, got ${String(bytes)}`);
    }
    if (!Number.isSafeInteger(rank)) throw new VmtreeError("invalid_argument", `rank: expected an integer, got ${String(rank)}`);
    if (this.#closed) throw closedError();
    signal?.throwIfAborted();
    if (bytes === 0) return;
    await new Promise<void>((resolve, reject) => {
      this.#settle();
      const waiter: Waiter = { bytes, rank, resolve, reject, signal, onAbort: () => this.#abort(waiter) };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      const behind = this.#queue.findIndex((other) => other.rank < rank);
      this.#queue.splice(behind < 0 ? this.#queue.length : behind, 0, waiter);
      this.#pump();
    });
  }

  /** Rejects every waiting take as aborted and stops the timer; later takes reject too. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#disarm();
    const waiters = this.#queue;
    this.#queue = [];
    for (const waiter of waiters) {
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.reject(closedError());
    }
  }

  /** Pays the debt off for the time since the last call; call before the queue changes. */
  #settle(): void {
    const now = this.#now();
    const elapsedMs = Math.max(0, now - this.#settledAt);
    this.#settledAt = now;
    if (this.#bitsPerSecond === Infinity) {
      this.#debt = 0;
      return;
    }
    const perMs = this.#bytesPerMs();
    // Idle time earns nothing, or a link quiet for an hour could then send an hour's
    // worth at once; only time that waiters spent waiting is banked, up to the slack.
    const floor = this.#queue.length > 0 ? -perMs * LATE_BANK_MS : 0;
    this.#debt = Math.max(floor, this.#debt - perMs * elapsedMs);
  }

  /** Lets waiters go from the head while the debt is paid, then times the next one. */
  #pump(): void {
    while (this.#debt <= 0 && this.#windowWaitMs() === 0) {
      const waiter = this.#queue.shift();
      if (waiter === undefined) break;
      if (this.#bitsPerSecond !== Infinity) {
        this.#debt += waiter.bytes;
        this.#recent.push({ at: this.#settledAt, bytes: waiter.bytes });
        this.#recentBytes += waiter.bytes;
      }
      this.#bytesGranted += waiter.bytes;
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.resolve();
    }
    this.#arm();
  }

  #arm(): void {
    this.#disarm();
    if (this.#queue.length === 0) return;
    // Rounded up: a timer that fires before the debt is paid would only have to wait again.
    const waitMs = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(this.#debt / this.#bytesPerMs()), Math.ceil(this.#windowWaitMs())));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#settle();
      this.#pump();
    }, waitMs);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #abort(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index < 0) return;
    this.#settle();
    this.#queue.splice(index, 1);
    waiter.reject(waiter.signal?.reason);
    // The debt is unchanged, so the others keep their times; only an empty queue stops the timer.
    this.#arm();
  }

  /**
   * Milliseconds until the grants of the last second hold no more than the rate; 0 when they
   * do already. Forgets the grants older than a second.
   */
  #windowWaitMs(): number {
    if (this.#bitsPerSecond === Infinity) return 0;
    const now = this.#settledAt;
    while (this.#recent.length > 0 && this.#recent[0]!.at <= now - WINDOW_MS) this.#recentBytes -= this.#recent.shift()!.bytes;
    const allowed = this.#bytesPerMs() * WINDOW_MS;
    let excess = this.#recentBytes - allowed;
    if (excess <= 0) return 0;
    // The wait ends when enough of the oldest grants have left the window.
    for (const grant of this.#recent) {
      excess -= grant.bytes;
      if (excess <= 0) return grant.at + WINDOW_MS - now;
    }
    return WINDOW_MS;
  }

  #bytesPerMs(): number {
    return this.#bitsPerSecond / 8 / 1000;
  }
}
