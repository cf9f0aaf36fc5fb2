import { belowMinimums } from "../../src/inventory/minimums.ts";
import type { SiteCamera } from "./demo-node.ts";
import { formatTable } from "./table.ts";

/** One site's line of the national view. */
export interface SiteSummary {
  site: string;
  cameras: number;
  /** Cameras with at least one shortfall against the Appendix 2 minimums (`belowMinimums`). */
  below: number;
  /** Shortfalls by measure ("fps", "IR range"...), most common first; a camera counts once per measure. */
  shortfalls: [measure: string, cameras: number][];
}

const SHORTFALLS_SHOWN = 3;

/** Groups the national node's cameras by site, sites in id order. */
export function summarise(cameras: readonly SiteCamera[]): SiteSummary[] {
  const bySite = new Map<string, SiteCamera[]>();
  for (const camera of cameras) {
    const site = bySite.get(camera.site) ?? [];
    site.push(camera);
    bySite.set(camera.site, site);
  }
  return [...bySite.keys()].sort().map((site) => summariseSite(site, bySite.get(site)!));
}

function summariseSite(site: string, cameras: readonly SiteCamera[]): SiteSummary {
  const measures = new Map<string, number>();
  let below = 0;
  for (const camera of cameras) {
    const reasons = belowMinimums(camera);
    if (reasons.length > 0) below += 1;
    for (const measure of reasons.map(measureOf)) measures.set(measure, (measures.get(measure) ?? 0) + 1);
  }
  const shortfalls = [...measures].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return { site, cameras: cameras.length, below, shortfalls };
}

/**
 * The measure a `belowMinimums` reason is about with its requirement, e.g.
 * `fps 12 < 25 (R-A2.1)` → `fps (R-A2.1)`: the words before the measured value.
 */
function measureOf(reason: string): string {
  const measure = /^\D+/.exec(reason)?.[0].trim() ?? reason;
  const requirement = /\((R-[^)]+)\)$/.exec(reason)?.[1];
  return requirement ? `${measure} (${requirement})` : measure;
}

/** The national view as an aligned table: cameras, cameras below the minimums and why, per site and in total. */
export function nationalTable(summaries: readonly SiteSummary[]): string[] {
  const rows = summaries.map((s) => [
    s.site,
    String(s.cameras),
    String(s.below),
    s.shortfalls.slice(0, SHORTFALLS_SHOWN).map(([measure, count]) => `${measure} ×${count}`).join(", "),
  ]);
  const total = (pick: (s: SiteSummary) => number) => String(summaries.reduce((sum, s) => sum + pick(s), 0));
  rows.push(["TOTAL", total((s) => s.cameras), total((s) => s.below), ""]);
  return formatTable(["SITE", "CAMERAS", "BELOW R-A2 MIN", "MOST COMMON SHORTFALLS"], rows, ["left", "right", "right", "left"]);
}

/** Fields compared by {@link describeChanges}; `stream_url` differs by design between site and nation. */
const COMPARED_FIELDS = ["name", "camera_type", "width", "height", "fps", "bitrate_kbps", "ir_range_m", "status"] as const;

/** What differs between two national views, one line per camera: `+` added, `-` removed, `~` changed. */
export function describeChanges(before: readonly SiteCamera[], after: readonly SiteCamera[]): string[] {
  const key = (c: SiteCamera) => `${c.site}/${c.camera_id}`;
  const old = new Map(before.map((c) => [key(c), c]));
  const now = new Map(after.map((c) => [key(c), c]));
  const lines: string[] = [];
  for (const [id, camera] of now) {
    const was = old.get(id);
    if (!was) {
      lines.push(`+ ${id}  added: ${camera.name}, ${camera.camera_type}, ${camera.width}x${camera.height}, ${camera.fps} fps, ${camera.bitrate_kbps} kbit/s`);
      continue;
    }
    const changed = COMPARED_FIELDS.filter((field) => was[field] !== camera[field]).map((field) => `${field} ${was[field]} → ${camera[field]}`);
    const nowMeets = belowMinimums(was).length > 0 && belowMinimums(camera).length === 0 ? " (now meets the minimums)" : "";
    if (changed.length > 0) lines.push(`~ ${id}  ${changed.join(", ")}${nowMeets}`);
  }
  for (const id of old.keys()) if (!now.has(id)) lines.push(`- ${id}  removed`);
  return lines.sort((a, b) => a.slice(2).localeCompare(b.slice(2)));
}

/** Cameras whose `stream_url` still holds userinfo (`user:password@`) or any other `@`. */
export function withCredentials(cameras: readonly SiteCamera[]): SiteCamera[] {
  return cameras.filter((camera) => camera.stream_url.includes("@"));
}
