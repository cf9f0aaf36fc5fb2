import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { formatBandwidth, formatBytes, nextChange, parseBandwidth, parseSchedule, scheduledCap } from "./bandwidth.ts";

/** The error `run` throws, so that tests can check its code and whole message. */
function thrown(run: () => unknown): VmtreeError {
  try {
    run();
  } catch (error) {
    if (error instanceof VmtreeError) return error;
    throw error;
  }
  throw new Error("expected a VmtreeError, nothing was thrown");
}

/** A local time on 15 January 2025, a day without a daylight saving change anywhere. */
function at(hours: number, minutes: number, seconds = 0, day = 15): Date {
  return new Date(2025, 0, day, hours, minutes, seconds);
}

const DAY_NIGHT = [
  { from: "08:00", to: "20:00", bandwidth: "20Mbit" },
  { from: "20:00", to: "08:00", bandwidth: "200Mbit" },
];

describe("parseBandwidth", () => {
  it.each<[string, number]>([
    ["20Mbit", 20_000_000],
    ["500kbit", 500_000],
    ["1.5Gbit", 1_500_000_000],
    ["750bit", 750],
    ["750bps", 750],
    ["64kbps", 64_000],
    ["20Mbps", 20_000_000],
    ["2Gbps", 2_000_000_000],
    ["64k", 64_000],
    ["20M", 20_000_000],
    ["10G", 10_000_000_000],
    ["1.1Mbit", 1_100_000],
    ["0.5Mbit", 500_000],
    ["0.0015Gbit", 1_500_000],
    ["2.5bit", 2.5],
    ["20 Mbit", 20_000_000],
    ["20 Mbit/s", 20_000_000],
    ["1.5Gbit/s", 1_500_000_000],
    ["  20Mbit  ", 20_000_000],
    ["unlimited", Infinity],
    ["none", Infinity],
    ["Unlimited", Infinity],
  ])("parseBandwidth - reads %s as %d bit/s", (text, expected) => {
    expect(parseBandwidth(text)).toBe(expected);
  });

  it.each<[string, string]>([
    ["20MB", "bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `20MB`"],
    ["20MB/s", "bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `20MB/s`"],
    ["5MiB", "bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `5MiB`"],
    ["1GBps", "bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `1GBps`"],
    ["100kbyte", "bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `100kbyte`"],
    ["20mbit", 'bandwidth: "m" could mean milli or mega: write M for mega, as in 20Mbit, got `20mbit`'],
    ["20m", 'bandwidth: "m" could mean milli or mega: write M for mega, as in 20Mbit, got `20m`'],
    ["20mbps", 'bandwidth: "m" could mean milli or mega: write M for mega, as in 20Mbit, got `20mbps`'],
    ["20", "bandwidth: a rate needs a unit: write 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20`"],
    ["0", 'bandwidth: expected a rate greater than 0 (write "unlimited" for no cap), got `0`'],
    ["0Mbit", 'bandwidth: expected a rate greater than 0 (write "unlimited" for no cap), got `0Mbit`'],
    ["0.000kbit", 'bandwidth: expected a rate greater than 0 (write "unlimited" for no cap), got `0.000kbit`'],
    ["-5Mbit", 'bandwidth: expected a rate greater than 0 (write "unlimited" for no cap), got `-5Mbit`'],
    ["20Kbit", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20Kbit`"],
    ["20Mibit", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20Mibit`"],
    ["20Mbps/s", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20Mbps/s`"],
    ["20M/s", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `20M/s`"],
    ["fast", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `fast`"],
    ["1e6bit", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `1e6bit`"],
    [".5Mbit", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got `.5Mbit`"],
    ["", "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got ``"],
    [`${"9".repeat(400)}Gbit`, `bandwidth: rate too large, got \`${"9".repeat(400)}Gbit\``],
  ])("parseBandwidth - refuses %s, naming the field and the value", (text, message) => {
    const error = thrown(() => parseBandwidth(text));
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(message);
  });

  it("parseBandwidth - names the given field", () => {
    expect(thrown(() => parseBandwidth("20MB", "links.uplink.bandwidth")).rawMessage).toBe(
      "links.uplink.bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `20MB`",
    );
  });

  it("parseBandwidth - refuses a value that is not a string, as a config could hold", () => {
    expect(thrown(() => parseBandwidth(20 as unknown as string)).rawMessage).toBe(
      "bandwidth: expected a rate like 20Mbit, 500kbit or 1.5Gbit (bits per second), got 20",
    );
  });
});

describe("formatBandwidth", () => {
  it.each<[number, string]>([
    [20_000_000, "20 Mbit/s"],
    [500_000, "500 kbit/s"],
    [1_500_000_000, "1.5 Gbit/s"],
    [1_234_567, "1.23 Mbit/s"],
    [999_999, "1 Mbit/s"],
    [999, "999 bit/s"],
    [0, "0 bit/s"],
    [10_000_000_000, "10 Gbit/s"],
    [Infinity, "unlimited"],
  ])("formatBandwidth - writes %d bit/s as %s", (bitsPerSecond, expected) => {
    expect(formatBandwidth(bitsPerSecond)).toBe(expected);
  });

  it.each([20_000_000, 500_000, 1_500_000_000, 750, Infinity])("formatBandwidth - output of %d parses back to it", (bitsPerSecond) => {
    expect(parseBandwidth(formatBandwidth(bitsPerSecond))).toBe(bitsPerSecond);
  });

  it.each([-1, Number.NaN, -Infinity])("formatBandwidth - refuses %d", (value) => {
    expect(thrown(() => formatBandwidth(value)).rawMessage).toBe(`bitsPerSecond: expected a number >= 0 or Infinity, got ${value}`);
  });
});

describe("formatBytes", () => {
  it.each<[number, string]>([
    [0, "0 bytes"],
    [1, "1 byte"],
    [1023, "1023 bytes"],
    [1024, "1024 bytes (1.0 KiB)"],
    [262_144, "262144 bytes (256.0 KiB)"],
    [67_108_864, "67108864 bytes (64.0 MiB)"],
    [1_048_575, "1048575 bytes (1.0 MiB)"],
    [1_500_000_000, "1500000000 bytes (1.4 GiB)"],
    [2 ** 40, "1099511627776 bytes (1.0 TiB)"],
  ])("formatBytes - writes %d as %s", (bytes, expected) => {
    expect(formatBytes(bytes)).toBe(expected);
  });

  it.each([-1, 1.5, Number.NaN, 2 ** 53])("formatBytes - refuses %d", (value) => {
    expect(thrown(() => formatBytes(value)).rawMessage).toBe(`bytes: expected a non-negative safe integer, got ${value}`);
  });
});

describe("parseSchedule", () => {
  it("parseSchedule - reads windows as minutes since local midnight", () => {
    expect(parseSchedule(DAY_NIGHT, "schedule")).toEqual({
      windows: [
        { from: 480, to: 1200, bitsPerSecond: 20_000_000 },
        { from: 1200, to: 480, bitsPerSecond: 200_000_000 },
      ],
    });
  });

  it("parseSchedule - accepts an empty list, windows ending at midnight and unlimited", () => {
    expect(parseSchedule([], "schedule")).toEqual({ windows: [] });
    expect(
      parseSchedule(
        [
          { from: "22:00", to: "00:00", bandwidth: "unlimited" },
          { from: "00:00", to: "06:00", bandwidth: "100Mbit" },
        ],
        "schedule",
      ),
    ).toEqual({
      windows: [
        { from: 1320, to: 0, bitsPerSecond: Infinity },
        { from: 0, to: 360, bitsPerSecond: 100_000_000 },
      ],
    });
  });

  it.each<[string, unknown, string]>([
    ["a non-list", { from: "08:00" }, 'links.up.schedule: expected a list of { from, to, bandwidth } windows, got {"from":"08:00"}'],
    ["an entry that is not an object", ["08:00-20:00"], "links.up.schedule[0]: expected { from, to, bandwidth }, got `08:00-20:00`"],
    [
      "an unknown field",
      [{ from: "08:00", to: "20:00", bandwith: "20Mbit" }],
      "links.up.schedule[0]: unknown field `bandwith` (expected from, to, bandwidth)",
    ],
    [
      "a missing field",
      [{ from: "08:00", bandwidth: "20Mbit" }],
      "links.up.schedule[0].to: expected a local time HH:MM from 00:00 to 23:59, got nothing",
    ],
    [
      "an hour past 23",
      [DAY_NIGHT[0], { from: "20:00", to: "24:00", bandwidth: "1Mbit" }],
      "links.up.schedule[1].to: expected a local time HH:MM from 00:00 to 23:59, got `24:00`",
    ],
    [
      "a time without its leading zero",
      [{ from: "8:00", to: "20:00", bandwidth: "1Mbit" }],
      "links.up.schedule[0].from: expected a local time HH:MM from 00:00 to 23:59, got `8:00`",
    ],
    [
      "a time as a number",
      [{ from: 800, to: "20:00", bandwidth: "1Mbit" }],
      "links.up.schedule[0].from: expected a local time HH:MM from 00:00 to 23:59, got 800",
    ],
    [
      "a rate in bytes",
      [DAY_NIGHT[0], { from: "20:00", to: "08:00", bandwidth: "25MB" }],
      "links.up.schedule[1].bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got `25MB`",
    ],
    [
      "an empty window",
      [{ from: "08:00", to: "08:00", bandwidth: "1Mbit" }],
      "links.up.schedule[0]: from and to are both 08:00; a window needs a length (a cap for the whole day is the link's bandwidth, not a schedule)",
    ],
    [
      "overlapping windows",
      [DAY_NIGHT[0], { from: "19:00", to: "21:00", bandwidth: "1Mbit" }],
      "links.up.schedule[1] (19:00–21:00) overlaps links.up.schedule[0] (08:00–20:00)",
    ],
    [
      "a wrapping window over the morning of another",
      [
        { from: "06:00", to: "09:00", bandwidth: "1Mbit" },
        { from: "22:00", to: "07:00", bandwidth: "1Mbit" },
      ],
      "links.up.schedule[1] (22:00–07:00) overlaps links.up.schedule[0] (06:00–09:00)",
    ],
    [
      "two wrapping windows",
      [
        { from: "23:00", to: "01:00", bandwidth: "1Mbit" },
        { from: "22:00", to: "22:30", bandwidth: "1Mbit" },
        { from: "23:30", to: "00:30", bandwidth: "1Mbit" },
      ],
      "links.up.schedule[2] (23:30–00:30) overlaps links.up.schedule[0] (23:00–01:00)",
    ],
  ])("parseSchedule - refuses %s, naming where, the index, the field and the value", (_, entries, message) => {
    const error = thrown(() => parseSchedule(entries, "links.up.schedule"));
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(message);
  });
});

describe("scheduledCap", () => {
  const schedule = parseSchedule(DAY_NIGHT, "schedule");

  it.each<[Date, number]>([
    [at(7, 59, 59), 200_000_000],
    [at(8, 0), 20_000_000],
    [at(12, 30), 20_000_000],
    [at(19, 59, 59), 20_000_000],
    [at(20, 0), 200_000_000],
    [at(0, 0), 200_000_000],
    [at(23, 59, 59), 200_000_000],
  ])("scheduledCap - at %s", (date, expected) => {
    expect(scheduledCap(schedule, date)).toBe(expected);
  });

  it("scheduledCap - is undefined outside every window", () => {
    const office = parseSchedule([{ from: "08:00", to: "18:00", bandwidth: "10Mbit" }], "schedule");
    expect(scheduledCap(office, at(7, 59))).toBeUndefined();
    expect(scheduledCap(office, at(18, 0))).toBeUndefined();
    expect(scheduledCap(office, at(17, 59))).toBe(10_000_000);
    expect(scheduledCap({ windows: [] }, at(12, 0))).toBeUndefined();
  });

  it("scheduledCap - refuses an invalid date", () => {
    expect(thrown(() => scheduledCap(schedule, new Date(Number.NaN))).rawMessage).toBe("date: expected a valid Date, got Invalid Date");
  });
});

describe("nextChange", () => {
  const schedule = parseSchedule(DAY_NIGHT, "schedule");

  it("nextChange - is the next window boundary, later the same day", () => {
    expect(nextChange(schedule, at(12, 30, 15))).toEqual(at(20, 0));
    expect(nextChange(schedule, at(7, 59, 59))).toEqual(at(8, 0));
  });

  it("nextChange - is the next boundary, not the current one, at the instant of a change", () => {
    expect(nextChange(schedule, at(8, 0))).toEqual(at(20, 0));
  });

  it("nextChange - wraps past midnight to the next day", () => {
    expect(nextChange(schedule, at(20, 0, 1))).toEqual(at(8, 0, 0, 16));
  });

  it("nextChange - counts the end of a window followed by no window as a change", () => {
    const office = parseSchedule([{ from: "08:00", to: "18:00", bandwidth: "10Mbit" }], "schedule");
    expect(nextChange(office, at(9, 0))).toEqual(at(18, 0));
    expect(nextChange(office, at(18, 30))).toEqual(at(8, 0, 0, 16));
  });

  it("nextChange - skips a boundary between two windows with the same cap", () => {
    const split = parseSchedule(
      [
        { from: "08:00", to: "12:00", bandwidth: "20Mbit" },
        { from: "12:00", to: "20:00", bandwidth: "20000kbit" },
      ],
      "schedule",
    );
    expect(nextChange(split, at(9, 0))).toEqual(at(20, 0));
  });

  it("nextChange - is undefined when the cap never changes", () => {
    const allDay = parseSchedule(
      [
        { from: "00:00", to: "12:00", bandwidth: "5Mbit" },
        { from: "12:00", to: "00:00", bandwidth: "5Mbit" },
      ],
      "schedule",
    );
    expect(nextChange(allDay, at(9, 0))).toBeUndefined();
    expect(nextChange({ windows: [] }, at(9, 0))).toBeUndefined();
  });
});
