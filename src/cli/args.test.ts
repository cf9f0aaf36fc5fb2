import { describe, expect, it } from "vitest";
import { parseTime, parseVerbArgs, UsageError } from "./args.ts";

const usageMessage = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error("no usage error");
};

describe("parseVerbArgs", () => {
  const options = { data: { type: "string" as const }, json: { type: "boolean" as const } };

  it("parseVerbArgs - an unknown flag names the flags the command takes", () => {
    expect(usageMessage(() => parseVerbArgs(["--bogus"], options, 0))).toBe("unknown flag `--bogus`; this command takes --data, --json");
  });

  it("parseVerbArgs - a flag without its value says so", () => {
    expect(usageMessage(() => parseVerbArgs(["--data"], options, 0))).toBe("--data needs a value");
    expect(usageMessage(() => parseVerbArgs(["--data", "-x"], options, 0))).toBe("--data needs a value; one that starts with `-` is written --data=VALUE");
  });

  it("parseVerbArgs - a stray argument is named", () => {
    expect(usageMessage(() => parseVerbArgs(["--data", "d", "extra"], options, 0))).toBe("unexpected argument `extra`");
  });
});

describe("parseTime", () => {
  it.each([
    ["2026-12-03", Date.UTC(2026, 11, 3)],
    ["2026-12-03T10:00:00Z", Date.UTC(2026, 11, 3, 10)],
    ["2024-02-29T00:00:00+05:00", Date.UTC(2024, 1, 28, 19)],
  ])("parseTime - reads %s", (text, ms) => {
    expect(parseTime("since", text)).toBe(ms);
  });

  it.each(["2026-02-30", "2025-02-29", "2026-13-01", "2026-12-03T25:00:00Z", "1970-01-01T00:00:00Z", "2026-12-03T10:00", "yesterday", "1733220000000"])(
    "parseTime - refuses %s",
    (text) => {
      expect(usageMessage(() => parseTime("since", text))).toBe(`expected --since like 2026-12-03 or 2026-12-03T10:00:00Z (a date-time needs Z or an offset), got \`${text}\``);
    },
  );
});
