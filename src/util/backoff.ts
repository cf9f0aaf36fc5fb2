/** Options of {@link Backoff}. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Random spread as a fraction of the delay: 0.2 gives ±20 %. */
  jitter: number;
  random?: () => number;
}

/**
 * Capped exponential backoff with jitter, so that many children whose parent comes
 * back do not all reconnect in the same instant. `reset()` after a good connection.
 */
export class Backoff {
  readonly #options: Required<BackoffOptions>;
  #attempt = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new TypeError(`expected 0 < initialMs <= maxMs, got initialMs=${options.initialMs} maxMs=${options.maxMs}`);
    }
    if (!(options.jitter >= 0 && options.jitter < 1)) throw new TypeError(`expected 0 <= jitter < 1, got ${options.jitter}`);
    this.#options = { ...options, random: options.random ?? Math.random };
  }

  /** The delay before the next attempt; each call doubles the base delay up to the cap. */
  next(): number {
    const { initialMs, maxMs, jitter, random } = this.#options;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt += 1;
    const spread = base * jitter * (2 * random() - 1);
    return Math.max(0, Math.min(maxMs, Math.round(base + spread)));
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts; never leaks the timer. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    // setTimeout fires at once for delays above 2^31-1 ms.
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.min(ms, 2 ** 31 - 1));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
