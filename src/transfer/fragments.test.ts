import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AuditLog } from "../audit/audit-log.ts";
import { NodeStore } from "../store/node-store.ts";
import { createLogger } from "../util/log.ts";
import { Fragments, INCIDENT_RETENTION_DAYS, REQUEST_RETENTION_DAYS, RETENTION_DAYS } from "./fragments.ts";

const DAY_MS = 86_400_000;
const NOW = Date.UTC(2026, 11, 4, 8, 0, 0);
const END = Date.UTC(2026, 10, 20, 8, 15, 4);

let dir: string;
let store: NodeStore;
let audit: AuditLog;
let fragments: Fragments;
let recording: string;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-fragments-"));
  recording = path.join(dir, "cam-ala-001_20261120T081500Z.mp4");
  await writeFile(recording, "four seconds of H.264");
  store = await NodeStore.open(path.join(dir, "store"));
  audit = new AuditLog(store, "kz", 1);
  fragments = new Fragments({
    site: "kz",
    store,
    dir: path.join(dir, "fragments"),
    audit,
    log: createLogger("test", "error"),
    limiter: { take: async () => undefined },
    concurrency: 1,
    isChild: async () => false,
  });
  await fragments.open();
});

afterEach(async () => {
  await fragments.close();
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function addRecording(cameraId: string, incident: boolean) {
  const { fragment } = await fragments.add({ cameraId, filePath: recording, startMs: END - 4_000, endMs: END, incident });
  return fragment;
}

const listed = async () => (await fragments.list()).map((h) => h.fragment.id);

/** The audit entries of `action`, with their details parsed. */
async function audited(action: string) {
  return (await audit.list({ action })).map(({ actor, action: name, target, result, details, origin }) => ({ origin, actor, action: name, target, result, details: JSON.parse(details) as unknown }));
}

describe("Fragments.sweep (R-13, R-30)", () => {
  it("Fragments.sweep - keeps the retention the requirements ask: 30 days, 7 years for incidents, 24 months for requests", () => {
    expect(RETENTION_DAYS).toBe(30);
    // Seven years hold at most two leap days: 7 × 366 days is never short of them.
    expect(INCIDENT_RETENTION_DAYS * DAY_MS).toBeGreaterThanOrEqual(Date.UTC(2031, 11, 4) - Date.UTC(2024, 11, 4));
    expect(REQUEST_RETENTION_DAYS * DAY_MS).toBeGreaterThanOrEqual(Date.UTC(2025, 2, 1) - Date.UTC(2023, 2, 1));
  });

  it("Fragments.sweep - deletes a recording 30 days after its end and not one millisecond earlier, its file with it, and audits it (R-13)", async () => {
    const fragment = await addRecording("ala-cam-001", false);
    const file = fragments.archive.pathOf(fragment.id);
    expect(existsSync(file)).toBe(true);

    await fragments.sweep(END + 30 * DAY_MS - 1);
    expect(await listed()).toEqual([fragment.id]);
    expect(existsSync(file)).toBe(true);
    expect(await audited("fragment.expire")).toEqual([]);

    await fragments.sweep(END + 30 * DAY_MS);
    expect(await listed()).toEqual([]);
    expect(await fragments.archive.get(fragment.id)).toBeUndefined();
    expect(existsSync(file)).toBe(false);
    expect(await audited("fragment.expire")).toEqual([
      {
        origin: "kz",
        actor: "node",
        action: "fragment.expire",
        target: fragment.id,
        result: "ok",
        details: { site: "kz", camera: "ala-cam-001", end_ms: END, incident: false, retention_days: 30 },
      },
    ]);
    // Nothing is left to delete, nor audited twice.
    await fragments.sweep(END + 31 * DAY_MS);
    expect(await audited("fragment.expire")).toHaveLength(1);
  });

  it("Fragments.sweep - keeps an incident recording for at least 7 years, then deletes and audits it (R-13)", async () => {
    const incident = await addRecording("ala-cam-002", true);
    const routine = await addRecording("ala-cam-003", false);
    const file = fragments.archive.pathOf(incident.id);

    await fragments.sweep(END + 30 * DAY_MS);
    expect(await listed()).toEqual([incident.id]);
    // Seven calendar years to the day, and a day past them: still kept.
    await fragments.sweep(Date.UTC(2033, 10, 20, 8, 15, 4));
    await fragments.sweep(Date.UTC(2033, 10, 21, 8, 15, 4));
    await fragments.sweep(END + 7 * 366 * DAY_MS - 1);
    expect(await listed()).toEqual([incident.id]);
    expect(existsSync(file)).toBe(true);

    await fragments.sweep(END + 7 * 366 * DAY_MS);
    expect(await listed()).toEqual([]);
    expect(existsSync(file)).toBe(false);
    expect(await audited("fragment.expire")).toEqual([
      { origin: "kz", actor: "node", action: "fragment.expire", target: routine.id, result: "ok", details: { site: "kz", camera: "ala-cam-003", end_ms: END, incident: false, retention_days: 30 } },
      { origin: "kz", actor: "node", action: "fragment.expire", target: incident.id, result: "ok", details: { site: "kz", camera: "ala-cam-002", end_ms: END, incident: true, retention_days: 2562 } },
    ]);
  });

  it("Fragments.sweep - destroys a request and its outcome once it is older than 24 months, and audits it (R-30)", async () => {
    const fields = { site: "kz.ala", camera_id: "ala-cam-001", from_ms: END - 60_000, to_ms: END, reason: "incident report 17/2026", requested_by: "user:ivanov" };
    const first = await fragments.request(fields);
    vi.setSystemTime(NOW + 10 * DAY_MS);
    const second = await fragments.request(fields);
    expect([first.requested_ms, second.requested_ms]).toEqual([NOW, NOW + 10 * DAY_MS]);
    const ids = async () => (await fragments.requests.list()).map((r) => r.request.id);
    expect(await ids()).toEqual(["kz/1", "kz/2"]);

    // 24 calendar months to the day, and the whole retention of 732 days: still kept.
    await fragments.sweep(Date.UTC(2028, 11, 4, 8, 0, 0));
    await fragments.sweep(NOW + 732 * DAY_MS);
    expect(await ids()).toEqual(["kz/1", "kz/2"]);
    expect(await audited("fragment.request.destroy")).toEqual([]);

    await fragments.sweep(NOW + 732 * DAY_MS + 1);
    expect(await ids()).toEqual(["kz/2"]);
    expect(await fragments.requests.get("kz/1")).toBeUndefined();
    expect(await audited("fragment.request.destroy")).toEqual([
      { origin: "kz", actor: "node", action: "fragment.request.destroy", target: "kz/1", result: "ok", details: { requested_ms: NOW, retention_days: 732 } },
    ]);
  });

  it("Fragments.sweep - deletes nothing more once its signal aborts, as when the node stops", async () => {
    const fragment = await addRecording("ala-cam-001", false);
    const stop = new AbortController();
    stop.abort();
    await fragments.sweep(END + 30 * DAY_MS, stop.signal);
    expect(await listed()).toEqual([fragment.id]);
    expect(await audited("fragment.expire")).toEqual([]);
  });
});
