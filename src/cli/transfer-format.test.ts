import { describe, expect, it } from "vitest";
import type { ListTransfersResponse, Transfer } from "../gen/vmtree/v1/admin.ts";
import { capText, etaText, progressBar, transferJson, transfersJson, transfersText } from "./transfer-format.ts";

const sending: Transfer = {
  fragment_id: "f-0fdab0253ee4d551b4694cb26d13c083", peer: "kz.ala", direction: "up", priority: "requested", state: "sending",
  bytes_done: 1_048_576, total: 2_576_671, rate: 2_000_000, eta_ms: 764_000, resent: 0, attempts: 1, last_error: "",
};
const failed: Transfer = {
  fragment_id: "f-2f3cd34c9533128b753a0fd84ca5f24e", peer: "kz.ala", direction: "up", priority: "incident", state: "failed",
  bytes_done: 0, total: 0, rate: 0, eta_ms: 0, resent: 1_048_576, attempts: 3, last_error: "[not_found] gone\u001b[2J",
};
const result: ListTransfersResponse = { transfers: [sending, failed], cap_bits_per_second: 20_000_000, cap_source: "parent" };

describe("progressBar", () => {
  it.each([
    [0, 100, "[--------------------]   0%"],
    [25, 100, "[#####---------------]  25%"],
    [999, 1000, "[###################-]  99%"],
    [100, 100, "[####################] 100%"],
    [150, 100, "[####################] 100%"],
    [0, 0, "[--------------------]    ?"],
  ])("progressBar - %d of %d is %s", (done, total, bar) => {
    expect(progressBar(done, total)).toBe(bar);
  });

  it("progressBar - takes a width", () => {
    expect(progressBar(1, 2, 4)).toBe("[##--]  50%");
  });
});

describe("etaText", () => {
  it.each([
    [0, "-"],
    [-5, "-"],
    [400, "<1s"],
    [1_499, "1s"],
    [65_000, "1m 5s"],
    [3_723_000, "1h 2m 3s"],
  ])("etaText - %d ms is %s", (ms, text) => {
    expect(etaText(ms)).toBe(text);
  });
});

describe("transferJson", () => {
  it("transferJson - bytes stay bytes, the rate becomes bits per second, unknowns are null", () => {
    expect(transferJson(sending)).toEqual({
      fragment_id: "f-0fdab0253ee4d551b4694cb26d13c083", peer: "kz.ala", direction: "up", priority: "requested", state: "sending",
      bytes_done: 1_048_576, bytes_total: 2_576_671, rate_bits_per_second: 16_000_000, eta_ms: 764_000, resent_bytes: 0, attempts: 1, last_error: null,
    });
    expect(transferJson(failed)).toMatchObject({ eta_ms: null, rate_bits_per_second: 0, last_error: "[not_found] gone\u001b[2J" });
  });

  it("transfersJson - the cap is null when none is in force", () => {
    expect(transfersJson({ transfers: [], cap_bits_per_second: 0, cap_source: "none" }, Date.UTC(2026, 11, 4, 8))).toEqual({
      at: "2026-12-04T08:00:00.000Z", cap_bits_per_second: null, cap_source: "none", transfers: [],
    });
    expect(transfersJson(result, 0)).toMatchObject({ cap_bits_per_second: 20_000_000, cap_source: "parent" });
  });
});

describe("transfersText", () => {
  it("capText - names the rate, the exact bits and the source", () => {
    expect(capText(result)).toBe("20 Mbit/s (20000000 bits per second) set by the parent");
    expect(capText({ ...result, cap_source: "schedule", cap_bits_per_second: 1_500_000 })).toBe("1.5 Mbit/s (1500000 bits per second) from the config's schedule");
    expect(capText({ transfers: [], cap_bits_per_second: 0, cap_source: "none" })).toBe("none");
  });

  it("transfersText - a table with bytes as bytes and escaped errors", () => {
    expect(transfersText(result)).toBe(
      "cap on the parent link: 20 Mbit/s (20000000 bits per second) set by the parent\n" +
      "FRAGMENT                            PEER    DIRECTION  PRIORITY   STATE    DONE                     TOTAL                    RATE       ETA      RESENT                   ATTEMPTS  LAST ERROR\n" +
      "f-0fdab0253ee4d551b4694cb26d13c083  kz.ala  up         requested  sending  1048576 bytes (1.0 MiB)  2576671 bytes (2.5 MiB)  16 Mbit/s  12m 44s  0 bytes                  1         -\n" +
      "f-2f3cd34c9533128b753a0fd84ca5f24e  kz.ala  up         incident   failed   0 bytes                  0 bytes                  -          -        1048576 bytes (1.0 MiB)  3         [not_found] gone\\u001b[2J\n" +
      "2 transfer(s)\n",
    );
  });

  it("transfersText - with bars, a progress column per job", () => {
    const text = transfersText({ ...result, transfers: [sending] }, { bars: true });
    expect(text.split("\n")[2]).toContain("  [########------------]  40%  1048576 bytes (1.0 MiB)");
  });

  it("transfersText - no jobs, no table", () => {
    expect(transfersText({ transfers: [], cap_bits_per_second: 0, cap_source: "none" })).toBe("cap on the parent link: none\n0 transfer(s)\n");
  });
});
