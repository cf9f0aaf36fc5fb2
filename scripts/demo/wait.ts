import { setTimeout as sleep } from "node:timers/promises";

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** What is awaited, for the timeout message: "the national node to hold 82 cameras". */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  signal: AbortSignal;
}

/**
 * Calls `probe` until it returns something other than `undefined` and resolves with that,
 * pausing `intervalMs` between calls. Rejects when `timeoutMs` has passed (naming `what`
 * and the last probe error, if any) or when `signal` aborts. A probe that throws counts
 * as "not yet": a node may still be starting.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal.throwIfAborted();
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}${detail}`);
    }
    await sleep(options.intervalMs ?? 100, undefined, { signal: options.signal });
  }
}
