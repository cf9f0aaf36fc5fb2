import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NodeStore } from "../store/node-store.ts";
import { createLogger } from "../util/log.ts";
import { parseSchedule } from "./bandwidth.ts";
import { LinkCap, type LinkCapOptions } from "./link-cap.ts";
import { RateLimiter } from "./rate-limiter.ts";

// 20 Mbit/s in the working day, 200 Mbit/s at night, on the local clock.
const SCHEDULE = parseSchedule(
  [
    { from: "08:00", to: "20:00", bandwidth: "20Mbit" },
    { from: "22:00", to: "06:00", bandwidth: "200Mbit" },
  ],
  "bandwidthSchedule",
);
const local = (hours: number, minutes: number, seconds = 0, millis = 0) => new Date(2026, 11, 4, hours, minutes, seconds, millis).getTime();

let dir: string;
let store: NodeStore;
let limiter: RateLimiter;
let clock: number;
let caps: LinkCap[];

beforeEach(async () => {
  // Only the timers: the clock of the schedule is the one injected into the LinkCap.
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-link-cap-"));
  store = await NodeStore.open(path.join(dir, "store"));
  limiter = new RateLimiter({ bitsPerSecond: Infinity });
  caps = [];
});

afterEach(async () => {
  for (const cap of caps) cap.close();
  limiter.close();
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function startCap(options: Partial<LinkCapOptions> = {}): Promise<LinkCap> {
  const cap = new LinkCap({ limiter, store, log: createLogger("test", "error"), now: () => clock, ...options });
  caps.push(cap);
  await cap.start();
  return cap;
}

describe("LinkCap", () => {
  it("LinkCap - without a config, a schedule or a parent's cap there is none", async () => {
    clock = local(12, 0);
    const cap = await startCap();
    expect(cap.current()).toEqual({ bitsPerSecond: Infinity, source: "none" });
    expect(limiter.rate).toBe(Infinity);
  });

  it("LinkCap - the parent's cap applies when it is lower than the config's, the config's when it is lower (R-6.19)", async () => {
    clock = local(12, 0);
    const cap = await startCap({ configured: 64_000_000 });
    expect(cap.current()).toEqual({ bitsPerSecond: 64_000_000, source: "config" });
    expect(limiter.rate).toBe(64_000_000);
    await cap.setByParent(40_000_000, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 40_000_000, source: "parent" });
    expect(limiter.rate).toBe(40_000_000);
    await cap.setByParent(100_000_000, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 64_000_000, source: "config" });
    expect(limiter.rate).toBe(64_000_000);
    // 0 lifts the parent's cap.
    await cap.setByParent(0, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 64_000_000, source: "config" });
  });

  it("LinkCap - a parent's cap holds after a restart, before the link is up again", async () => {
    clock = local(12, 0);
    const first = await startCap({ configured: 64_000_000 });
    await first.setByParent(8_000_000, clock);
    first.close();
    limiter.setRate(Infinity);
    const second = await startCap({ configured: 64_000_000 });
    expect(second.current()).toEqual({ bitsPerSecond: 8_000_000, source: "parent" });
    expect(limiter.rate).toBe(8_000_000);
  });

  it("LinkCap - on a node that is not serving, the cap in force includes the parent's last cap from the store, and the limiter is left alone", async () => {
    clock = local(12, 0);
    const served = await startCap({ configured: 64_000_000 });
    await served.setByParent(3_000_000, clock);
    served.close();
    limiter.setRate(Infinity);
    const offline = new LinkCap({ limiter, store, log: createLogger("test", "error"), now: () => clock, configured: 64_000_000 });
    caps.push(offline);
    expect(await offline.inForce()).toEqual({ bitsPerSecond: 3_000_000, source: "parent" });
    expect(limiter.rate).toBe(Infinity);
  });

  it("LinkCap - switches to the schedule's cap at the window's start, to the config's at its end, and the parent's lower cap still wins", async () => {
    clock = local(7, 59, 59, 900);
    const cap = await startCap({ configured: 100_000_000, schedule: SCHEDULE });
    expect(cap.current()).toEqual({ bitsPerSecond: 100_000_000, source: "config" });
    expect(limiter.rate).toBe(100_000_000);

    // The timer is due 50 ms past 08:00; should it fire with the clock one millisecond short
    // of 08:00 (the clock was set back), nothing changes yet and it is set again.
    clock = local(7, 59, 59, 999);
    await vi.advanceTimersByTimeAsync(150);
    expect(limiter.rate).toBe(100_000_000);
    clock = local(8, 0, 0, 50);
    await vi.advanceTimersByTimeAsync(51);
    expect(limiter.rate).toBe(20_000_000);
    expect(cap.current()).toEqual({ bitsPerSecond: 20_000_000, source: "schedule" });

    await cap.setByParent(10_000_000, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 10_000_000, source: "parent" });
    await cap.setByParent(50_000_000, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 20_000_000, source: "schedule" });
    expect(limiter.rate).toBe(20_000_000);

    // At 20:00 the window ends and the config's cap is back; the next timer is 12 hours off.
    clock = local(20, 0, 0, 50);
    await vi.advanceTimersByTimeAsync(12 * 3_600_000);
    expect(cap.current()).toEqual({ bitsPerSecond: 50_000_000, source: "parent" });
    expect(limiter.rate).toBe(50_000_000);
    await cap.setByParent(0, clock);
    expect(cap.current()).toEqual({ bitsPerSecond: 100_000_000, source: "config" });

    // The night window raises the cap above the config's: a window's cap replaces `bandwidth`.
    clock = local(22, 0, 0, 50);
    await vi.advanceTimersByTimeAsync(2 * 3_600_000);
    expect(cap.current()).toEqual({ bitsPerSecond: 200_000_000, source: "schedule" });
    expect(limiter.rate).toBe(200_000_000);
  });

  it("LinkCap - a clock that jumps is caught up at the hourly check", async () => {
    clock = local(0, 30);
    const cap = await startCap({ configured: 100_000_000, schedule: SCHEDULE });
    expect(cap.current()).toEqual({ bitsPerSecond: 200_000_000, source: "schedule" });
    // The next change is at 06:00, but the clock is set forward to midday within the first hour.
    clock = local(12, 0);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(limiter.rate).toBe(20_000_000);
  });
});
