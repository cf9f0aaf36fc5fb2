import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { parseNodeConfig } from "./data-dir.ts";

const FILE = "/data/metro/node.json";
const REMEDY = "restore /data/metro from its backup, or enrol the node again into an empty data directory";
const GOOD = {
  site: "kz.ala.metro-01",
  epoch: 2,
  storeId: "0123456789abcdef0123456789abcdef",
  listen: "127.0.0.1:0",
  parent: { site: "kz.ala", address: "127.0.0.1:40123" },
  createdAt: "2026-12-03T10:00:00.000Z",
};

function refusal(text: string): string {
  try {
    parseNodeConfig(text, FILE);
  } catch (error) {
    expect(error).toBeInstanceOf(VmtreeError);
    expect((error as VmtreeError).code).toBe("failed_precondition");
    return (error as VmtreeError).rawMessage;
  }
  throw new Error("accepted");
}

const withField = (patch: Record<string, unknown>) => JSON.stringify({ ...GOOD, ...patch });

describe("parseNodeConfig", () => {
  it("accepts a child's and a root's node.json as they are written", () => {
    expect(parseNodeConfig(JSON.stringify(GOOD), FILE)).toEqual(GOOD);
    const root = { site: "kz", epoch: 1, storeId: "0".repeat(32), listen: "127.0.0.1:7443", advertise: "nvms.example.kz:7443", auditRetentionDays: 30, createdAt: "x" };
    expect(parseNodeConfig(JSON.stringify(root), FILE)).toEqual(root);
  });

  it("refuses text that is not JSON, naming the file", () => {
    expect(refusal("{site: 1}")).toMatch(/^\/data\/metro\/node\.json is not valid JSON \(Expected property name.*\); restore \/data\/metro from its backup/);
  });

  it("refuses JSON that is not an object", () => {
    expect(refusal("null")).toBe(`${FILE} holds null, expected an object with the fields site, epoch, storeId and listen; ${REMEDY}`);
    expect(refusal("[1]")).toBe(`${FILE} holds [1], expected an object with the fields site, epoch, storeId and listen; ${REMEDY}`);
  });

  it("refuses a bad site", () => {
    expect(refusal(withField({ site: undefined }))).toBe(`${FILE} field site: expected a site id like kz.ala, got nothing (the field is missing); ${REMEDY}`);
    expect(refusal(withField({ site: "KZ" }))).toBe(
      `${FILE} field site: expected a site id like kz.ala, got "KZ" (invalid site id "KZ": segment "KZ" must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit); ${REMEDY}`,
    );
  });

  it("refuses an epoch that is not a positive integer", () => {
    expect(refusal(withField({ epoch: "x" }))).toBe(`${FILE} field epoch: expected a positive integer, got "x"; ${REMEDY}`);
    expect(refusal(withField({ epoch: 0 }))).toBe(`${FILE} field epoch: expected a positive integer, got 0; ${REMEDY}`);
    expect(refusal(withField({ epoch: 1.5 }))).toBe(`${FILE} field epoch: expected a positive integer, got 1.5; ${REMEDY}`);
  });

  it("refuses a bad listen address", () => {
    expect(refusal(withField({ listen: "nowhere" }))).toBe(`${FILE} field listen: expected HOST:PORT like 127.0.0.1:7443, got "nowhere"; ${REMEDY}`);
    expect(refusal(withField({ listen: 7443 }))).toBe(`${FILE} field listen: expected HOST:PORT like 127.0.0.1:7443, got 7443; ${REMEDY}`);
  });

  it("refuses a parent without site or address, or not the site's parent", () => {
    expect(refusal(withField({ parent: {} }))).toBe(`${FILE} field parent.site: expected a site id like kz.ala, got nothing (the field is missing); ${REMEDY}`);
    expect(refusal(withField({ parent: "kz.ala" }))).toBe(`${FILE} field parent: expected an object with the fields site and address, got "kz.ala"; ${REMEDY}`);
    expect(refusal(withField({ parent: null }))).toBe(`${FILE} field parent: expected an object with the fields site and address, got null; ${REMEDY}`);
    expect(refusal(withField({ parent: { site: "kz.ast", address: "127.0.0.1:1" } }))).toBe(
      `${FILE} field parent.site: expected kz.ala, the parent of kz.ala.metro-01, got "kz.ast"; ${REMEDY}`,
    );
    expect(refusal(withField({ parent: { site: "kz.ala" } }))).toBe(
      `${FILE} field parent.address: expected HOST:PORT with a real port, like 127.0.0.1:7443, got nothing (the field is missing); ${REMEDY}`,
    );
    expect(refusal(withField({ parent: { site: "kz.ala", address: "127.0.0.1:0" } }))).toBe(
      `${FILE} field parent.address: expected HOST:PORT with a real port, like 127.0.0.1:7443, got "127.0.0.1:0"; ${REMEDY}`,
    );
  });

  it("refuses bad optional fields", () => {
    expect(refusal(withField({ advertise: "x" }))).toBe(`${FILE} field advertise: expected HOST:PORT with a real port, like 127.0.0.1:7443, got "x"; ${REMEDY}`);
    expect(refusal(withField({ storeId: 5 }))).toBe(`${FILE} field storeId: expected 32 hexadecimal digits, got 5; ${REMEDY}`);
  });

  it("refuses a bad setting, saying to correct that field rather than to restore or enrol again", () => {
    const fix = "correct it, or remove it for the default";
    expect(refusal(withField({ auditRetentionDays: -1 }))).toBe(`${FILE} field auditRetentionDays: expected a positive number of days, got -1; ${fix}`);
    expect(refusal(withField({ bandwidth: "20MB" }))).toBe(
      `${FILE} field bandwidth: expected a rate like 200Mbit, got "20MB" (bandwidth: units are bits per second: use kbit, Mbit or Gbit (8 Mbit = 1 MB/s), got \`20MB\`); ${fix}`,
    );
    expect(refusal(withField({ transferConcurrency: 33 }))).toBe(`${FILE} field transferConcurrency: expected an integer from 1 to 32, got 33; ${fix}`);
  });
});
