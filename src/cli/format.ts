import type { GetStatusResponse, LinkStatus } from "../gen/vmtree/v1/admin.ts";
import type { Camera } from "../gen/vmtree/v1/inventory.ts";
import { CAMERA_FIELDS } from "../inventory/camera.ts";

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);

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
      ? { ...link(status.parent), address: status.parent.address, sent: status.parent.sent, lastError: status.parent.last_error || null }
      : null,
    children: status.children.map((child) => ({ ...link(child), received: child.received })),
    cameras: { own: status.own_cameras, subtree: status.subtree_cameras },
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
      ? [[site, camera.camera_id, camera.camera_type, camera.codec, `${camera.width}x${camera.height}`, String(camera.fps), camera.status, camera.name]]
      : [],
  );
  const header = ["SITE", "CAMERA", "TYPE", "CODEC", "RESOLUTION", "FPS", "STATUS", "NAME"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return `${[line(header), ...rows.map(line)].join("\n")}\n${rows.length} camera(s)\n`;
}
