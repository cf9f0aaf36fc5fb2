import type { ChainReport, GetStatusResponse, LinkStatus } from "../gen/vmtree/v1/admin.ts";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import type { Camera } from "../gen/vmtree/v1/inventory.ts";
import { CAMERA_FIELDS } from "../inventory/camera.ts";
import { policyStateJson, policyStateText } from "./policy-format.ts";

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);

/**
 * Text from other sites, made safe for a terminal table: line breaks and tabs become
 * spaces, any other control character or bidirectional override is shown escaped
 * (`\u001b`), so no value can move the cursor, recolour the screen, forge a line or
 * read backwards.
 */
export function printable(text: string): string {
  return text
    .replace(/[\t\r\n]+/g, " ")
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The `status --json` shape; scripts rely on it. */
export function statusJson(status: GetStatusResponse) {
  const link = (l: LinkStatus) => ({
    site: l.site,
    epoch: l.epoch,
    state: l.state,
    since: iso(l.since_ms),
    lastSync: iso(l.last_sync_ms),
    pending: l.pending,
  });
  return {
    site: status.site,
    epoch: status.epoch,
    listen: status.listen,
    running: status.started_ms > 0,
    root: status.is_root,
    parent: status.parent
      ? {
          ...link(status.parent),
          address: status.parent.address,
          sent: status.parent.sent,
          lastError: status.parent.last_error || null,
          auditSent: status.parent.audit_sent,
          auditPending: status.parent.audit_pending,
          auditQuarantinedByParent: status.parent.audit_quarantined_by_parent,
        }
      : null,
    children: status.children.map((child) => ({ ...link(child), received: child.received, auditReceived: child.audit_received })),
    cameras: { own: status.own_cameras, subtree: status.subtree_cameras },
    audit: {
      own: status.audit_entries_own,
      quarantined: status.audit_quarantines.map((q) => ({ origin: q.origin, epoch: q.epoch, seq: q.seq, reason: q.reason, since: iso(q.at_ms) })),
    },
    policy: status.policy ? policyStateJson(status.policy) : null,
  };
}

/** Human-readable status. */
export function statusText(status: GetStatusResponse): string {
  const json = statusJson(status);
  const describe = (l: { state: string; since: string | null; lastSync: string | null; pending: number }) =>
    `${l.state}${l.since ? ` since ${l.since}` : ""}; last sync ${l.lastSync ?? "never"}; ${l.pending} waiting`;
  const lines = [
    `site      ${json.site} (epoch ${json.epoch})${json.running ? "" : " — node not running"}`,
    `listen    ${json.listen}`,
    json.parent
      ? `parent    ${json.parent.site} at ${json.parent.address}: ${describe(json.parent)}; ${json.parent.sent} sent` +
        (json.parent.lastError ? `; last error: ${json.parent.lastError}` : "")
      : "parent    none (root)",
    `children  ${json.children.length === 0 ? "none" : ""}`,
    ...json.children.map((c) => `  ${c.site.padEnd(28)} ${describe(c)}; ${c.received} received`),
    `cameras   ${json.cameras.own} own, ${json.cameras.subtree} in subtree`,
    `audit     own log at entry ${json.audit.own}` +
      (json.parent ? `; ${json.parent.auditPending} waiting, ${json.parent.auditSent} sent` : "") +
      (json.parent?.auditQuarantinedByParent.length ? `; QUARANTINED by the parent: ${json.parent.auditQuarantinedByParent.join(", ")}` : ""),
    ...json.audit.quarantined.map((q) => `  QUARANTINED ${q.origin} since ${q.since} at entry ${q.seq} (epoch ${q.epoch}): ${q.reason}`),
    ...(status.policy ? [`policy    ${policyStateText(status.policy)}`] : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** One camera as `cameras list --json` prints it: the input's field names plus `site`. */
export function cameraJson(site: string, camera: Camera): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of CAMERA_FIELDS) out[field] = camera[field];
  out.site = site;
  return out;
}

/** A fixed-width table of cameras. */
export function camerasText(cameras: readonly { site: string; camera?: Camera | undefined }[]): string {
  const rows = cameras.flatMap(({ site, camera }) =>
    camera
      ? [[site, camera.camera_id, camera.camera_type, camera.codec, `${camera.width}x${camera.height}`, String(camera.fps), camera.status, printable(camera.name)]]
      : [],
  );
  return `${tableText(["SITE", "CAMERA", "TYPE", "CODEC", "RESOLUTION", "FPS", "STATUS", "NAME"], rows)}${rows.length} camera(s)\n`;
}

/**
 * Rows under a header, columns two spaces apart, each line ending in a newline. The last
 * column is not padded, so that a long free-text value does not push trailing spaces.
 * Cells must already be {@link printable}.
 */
export function tableText(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [header, ...rows].map((cells) => `${line(cells)}\n`).join("");
}

/** One audit entry as `audit list --json` prints it. */
export function auditEntryJson(entry: AuditEntry) {
  return {
    origin: entry.origin,
    epoch: entry.epoch,
    seq: entry.seq,
    time: new Date(entry.time_ms).toISOString(),
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    result: entry.result,
    details: JSON.parse(entry.details || "{}") as unknown,
    prevHash: entry.prev_hash,
    hash: entry.hash,
  };
}

/** Audit entries, one line each. */
export function auditEntriesText(entries: readonly AuditEntry[]): string {
  const lines = entries.map((e) => {
    const details = e.details && e.details !== "{}" ? ` ${e.details}` : "";
    return printable(`${new Date(e.time_ms).toISOString()}  ${e.origin}#${e.epoch}.${e.seq}  ${e.actor}  ${e.action}  ${e.target}  ${e.result}${details}`);
  });
  return `${[...lines, `${entries.length} entr${entries.length === 1 ? "y" : "ies"}`].join("\n")}\n`;
}

/** One chain report as `audit verify --json` prints it. */
export function chainJson(report: ChainReport) {
  return {
    origin: report.origin,
    epoch: report.epoch,
    entries: report.entries,
    firstSeq: report.first_seq,
    lastSeq: report.last_seq,
    headHash: report.head_hash,
    ok: report.ok,
    badSeq: report.ok ? null : report.bad_seq,
    reason: report.ok ? null : report.reason,
    quarantined: report.quarantined || null,
  };
}

/** Chain reports, one line each. */
export function chainsText(reports: readonly ChainReport[]): string {
  const lines = reports.map((r) => {
    const verdict = r.ok ? "OK" : `BAD at ${r.bad_seq}: ${r.reason}`;
    const quarantine = r.quarantined ? `; QUARANTINED: ${r.quarantined}` : "";
    return `${r.origin} epoch ${r.epoch}: ${r.entries} entries, ${r.first_seq}..${r.last_seq}, head ${r.head_hash.slice(0, 16)}…  ${verdict}${quarantine}`;
  });
  return `${(lines.length > 0 ? lines : ["no audit entries"]).join("\n")}\n`;
}
