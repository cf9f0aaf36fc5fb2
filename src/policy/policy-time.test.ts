import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { addCalendarMonths, checkDuration, formatInstant, parseDuration, parsePolicyInstant } from "./policy-time.ts";

describe("parsePolicyInstant", () => {
  it.each([
    ["a date, meaning 00:00 UTC", "2026-12-04", "2026-12-04T00:00:00.000Z"],
    ["a date-time in UTC", "2026-12-04T09:30:00Z", "2026-12-04T09:30:00.000Z"],
    ["a date-time without seconds", "2026-12-04T09:30Z", "2026-12-04T09:30:00.000Z"],
    ["a positive offset", "2026-12-04T09:30:00+05:00", "2026-12-04T04:30:00.000Z"],
    ["a negative offset", "2026-12-04T20:00:00-05:00", "2026-12-05T01:00:00.000Z"],
    ["milliseconds", "2026-12-04T09:30:00.123Z", "2026-12-04T09:30:00.123Z"],
    ["a fraction finer than milliseconds, cut", "2026-12-04T09:30:00.123999Z", "2026-12-04T09:30:00.123Z"],
    ["a leap day", "2028-02-29", "2028-02-29T00:00:00.000Z"],
  ])("parsePolicyInstant - reads %s", (_, text, iso) => {
    expect(parsePolicyInstant(text)).toEqual({ ok: true, value: Date.parse(iso) });
  });

  it.each([
    ["a month 13", "2027-13-01"],
    ["day 31 of a 30-day month", "2027-04-31"],
    ["Feb 29 of a common year", "2027-02-29"],
    ["hour 24", "2026-12-04T24:00:00Z"],
    ["a date-time without a zone", "2026-12-04T09:30:00"],
    ["a lower-case z", "2026-12-04T09:30:00z"],
    ["a space for T", "2026-12-04 09:30:00Z"],
    ["an offset without a colon", "2026-12-04T09:30:00+0500"],
    ["an offset hour 24", "2026-12-04T09:30:00+24:00"],
    ["a day-first date", "04.12.2026"],
    ["a date before 1970", "1969-12-31"],
    ["the epoch itself, which means no bound", "1970-01-01"],
    ["an empty string", ""],
  ])("parsePolicyInstant - refuses %s", (_, text) => {
    expect(parsePolicyInstant(text)).toEqual({
      ok: false,
      error: `${JSON.stringify(text)} is not a date (expected YYYY-MM-DD or an ISO 8601 date-time with Z or an offset)`,
    });
  });
});

describe("addCalendarMonths", () => {
  it.each([
    ["12 months, same day and time", "2026-12-04T09:30:00.000Z", 12, "2027-12-04T09:30:00.000Z"],
    ["12 months from a leap day, clamped to Feb 28", "2028-02-29T00:00:00.000Z", 12, "2029-02-28T00:00:00.000Z"],
    ["1 month from Jan 31, clamped to Feb 28", "2027-01-31T12:00:00.000Z", 1, "2027-02-28T12:00:00.000Z"],
    ["1 month from Jan 31 of a leap year", "2028-01-31T00:00:00.000Z", 1, "2028-02-29T00:00:00.000Z"],
    ["12 months from Dec 31", "2026-12-31T23:59:59.999Z", 12, "2027-12-31T23:59:59.999Z"],
  ])("addCalendarMonths - %s", (_, start, months, end) => {
    expect(formatInstant(addCalendarMonths(Date.parse(start), months))).toBe(end);
  });
});

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["72h", 259_200_000],
    ["7d", 604_800_000],
    ["3650d", 315_360_000_000],
  ])("parseDuration - reads %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ["", '"" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)'],
    ["-5h", '"-5h" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)'],
    ["1.5h", '"1.5h" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)'],
    ["1h30m", '"1h30m" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)'],
    ["72", '"72" is not a duration (expected a whole number and one unit of s, m, h or d, like 90s, 30m, 72h or 7d)'],
    ["0h", '"0h" is zero; give a duration above 0'],
    ["3651d", '"3651d" is longer than 10 years (3650d)'],
  ])("parseDuration - refuses %j", (text, message) => {
    expect(checkDuration(text)).toEqual({ ok: false, error: message });
    expect(() => parseDuration(text)).toThrow(new VmtreeError("invalid_argument", message));
  });

  it("parseDuration - throws a VmtreeError with code invalid_argument", () => {
    const error = (() => {
      try {
        parseDuration("soon");
      } catch (reason) {
        return reason;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(VmtreeError);
    expect((error as VmtreeError).code).toBe("invalid_argument");
  });
});
