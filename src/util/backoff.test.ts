import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Backoff, delay, type BackoffOptions } from "./backoff.ts";

/** A random source that returns `values` in turn, then repeats the last one. */
function sequence(...values: number[]): () => number {
  let index = 0;
  return () => values[Math.min(index++, values.length - 1)] ?? 0.5;
}

function delays(backoff: Backoff, count: number): number[] {
  return Array.from({ length: count }, () => backoff.next());
}

afterEach(() => {
  // Spies first: a spy on a faked setTimeout must not be restored after the real one is back.
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("Backoff", () => {
  it("Backoff - doubles from initialMs up to maxMs without jitter", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect(delays(backoff, 7)).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it("Backoff - adds nothing when random is 0.5", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0.5 });
    expect(delays(backoff, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("Backoff - takes jitter off the base delay when random is 0", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0 });
    expect(delays(backoff, 6)).toEqual([80, 160, 320, 640, 800, 800]);
  });

  it("Backoff - adds jitter up to the cap when random is 1", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.2, random: () => 1 });
    expect(delays(backoff, 6)).toEqual([120, 240, 480, 960, 1000, 1000]);
  });

  it("Backoff - follows the injected random value of each call", () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 60_000, jitter: 0.3, random: sequence(0.25, 0.75, 0, 0.999, 0.5) });
    // base 1000 * (1 + 0.3 * (2r - 1)), base doubling: 1000, 2000, 4000, 8000, 16000
    expect(delays(backoff, 5)).toEqual([850, 2300, 2800, 10_395, 16_000]);
  });

  it("Backoff - stays within ±jitter of the base delay and never above maxMs", () => {
    const randoms = Array.from({ length: 200 }, (_, i) => (i * 0.6180339887) % 1);
    const backoff = new Backoff({ initialMs: 250, maxMs: 10_000, jitter: 0.4, random: sequence(...randoms) });
    for (let attempt = 0; attempt < 200; attempt += 1) {
      const base = Math.min(10_000, 250 * 2 ** attempt);
      const value = backoff.next();
      expect(value).toBeGreaterThanOrEqual(Math.round(base * 0.6));
      expect(value).toBeLessThanOrEqual(Math.min(10_000, Math.round(base * 1.4)));
      expect(Number.isInteger(value)).toBe(true);
    }
  });

  it("Backoff - keeps returning maxMs after very many attempts", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 60_000, jitter: 0.1, random: () => 0.999 });
    const values = delays(backoff, 100);
    expect(values.slice(0, 3)).toEqual([110, 220, 440]);
    expect(values.slice(10)).toEqual(Array(90).fill(60_000));
  });

  it("Backoff - reset() starts the sequence over", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect(delays(backoff, 3)).toEqual([100, 200, 400]);
    backoff.reset();
    expect(delays(backoff, 3)).toEqual([100, 200, 400]);
    backoff.reset();
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  it("Backoff - uses Math.random when no random is given", () => {
    const random = vi.spyOn(Math, "random").mockReturnValue(0);
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 });
    expect(backoff.next()).toBe(50);
    expect(random).toHaveBeenCalledTimes(1);
  });

  it("Backoff - accepts initialMs equal to maxMs", () => {
    expect(delays(new Backoff({ initialMs: 500, maxMs: 500, jitter: 0 }), 3)).toEqual([500, 500, 500]);
  });

  it.each<[string, BackoffOptions, string]>([
    ["initialMs 0", { initialMs: 0, maxMs: 1000, jitter: 0 }, "expected 0 < initialMs <= maxMs, got initialMs=0 maxMs=1000"],
    ["a negative initialMs", { initialMs: -5, maxMs: 1000, jitter: 0 }, "expected 0 < initialMs <= maxMs, got initialMs=-5 maxMs=1000"],
    ["a NaN initialMs", { initialMs: Number.NaN, maxMs: 1000, jitter: 0 }, "expected 0 < initialMs <= maxMs, got initialMs=NaN maxMs=1000"],
    ["maxMs below initialMs", { initialMs: 1000, maxMs: 999, jitter: 0 }, "expected 0 < initialMs <= maxMs, got initialMs=1000 maxMs=999"],
    ["a NaN maxMs", { initialMs: 1000, maxMs: Number.NaN, jitter: 0 }, "expected 0 < initialMs <= maxMs, got initialMs=1000 maxMs=NaN"],
    ["jitter 1", { initialMs: 100, maxMs: 1000, jitter: 1 }, "expected 0 <= jitter < 1, got 1"],
    ["a negative jitter", { initialMs: 100, maxMs: 1000, jitter: -0.1 }, "expected 0 <= jitter < 1, got -0.1"],
    ["a NaN jitter", { initialMs: 100, maxMs: 1000, jitter: Number.NaN }, "expected 0 <= jitter < 1, got NaN"],
  ])("Backoff - refuses %s with a TypeError naming the value", (_, options, message) => {
    expect(() => new Backoff(options)).toThrow(TypeError);
    expect(() => new Backoff(options)).toThrow(message);
  });

  // Bug (minor): `{ random: Math.random, ...options }` lets an explicit `random: undefined`
  // (allowed by the optional type, and what `random: options.random` forwards) replace the
  // default, so next() throws "random is not a function".
  it("Backoff - falls back to Math.random when random is passed as undefined", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0, random: undefined });
    expect(backoff.next()).toBe(100);
  });
});

describe("delay", () => {
  it("delay - resolves after the given time, not before", async () => {
    vi.useFakeTimers();
    let done = false;
    const waiting = delay(1000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    await waiting;
    expect(vi.getTimerCount()).toBe(0);
  });

  it("delay - removes its abort listener once it resolves", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const waiting = delay(500, controller.signal);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(500);
    await expect(waiting).resolves.toBeUndefined();
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    controller.abort();
  });

  it("delay - rejects with the signal's reason when aborted, and clears its timer and listener", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const reason = new Error("link closed");
    const waiting = delay(10_000, controller.signal);
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("delay - rejects with an AbortError when aborted without a reason", async () => {
    const controller = new AbortController();
    const waiting = delay(10_000, controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
  });

  it("delay - rejects at once, without a timer or listener, when the signal is already aborted", async () => {
    vi.useFakeTimers();
    const reason = new Error("shutting down");
    const signal = AbortSignal.abort(reason);
    await expect(delay(1000, signal)).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("delay - clamps delays above 2^31-1 ms instead of firing at once", async () => {
    vi.useFakeTimers();
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    let done = false;
    const waiting = delay(2 ** 32).then(() => {
      done = true;
    });
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    expect(setTimeoutSpy.mock.calls[0]?.[1]).toBe(2 ** 31 - 1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
    await waiting;
    expect(done).toBe(true);
  });
});
