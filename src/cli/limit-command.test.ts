import { describe, expect, it } from "vitest";
import { UsageError } from "./args.ts";
import { parseLimitFlag } from "./limit-command.ts";

describe("parseLimitFlag", () => {
  it.each([
    ["20Mbit", 20_000_000],
    ["500kbit", 500_000],
    ["1.5Gbit", 1_500_000_000],
    ["20 Mbit/s", 20_000_000],
    ["none", 0],
    ["unlimited", 0],
    ["0", 0],
  ])("parseLimitFlag - reads %s as %d bits per second", (text, bits) => {
    expect(parseLimitFlag(text)).toBe(bits);
  });

  it.each([
    ["20 furlongs", "--bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20 furlongs`"],
    ["20MB", "--bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `20MB`"],
    ["20", "--bandwidth: a rate needs a unit: write 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20`"],
    ["1.5bit", "--bandwidth: expected a whole number of bits per second, got `1.5bit` (1.5 bit/s)"],
  ])("parseLimitFlag - refuses %s as a usage error", (text, message) => {
    expect(() => parseLimitFlag(text)).toThrow(new UsageError(message));
  });
});
