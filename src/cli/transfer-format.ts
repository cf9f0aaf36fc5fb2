import type { ListTransfersResponse, Transfer } from "../gen/vmtree/v1/admin.ts";
import { formatDuration } from "../node/policy-operations.ts";
import { formatBandwidth, formatBytes } from "../transfer/bandwidth.ts";
import { printable, tableText } from "./format.ts";

/** Where a cap in force comes from, as the text output says it. */
const CAP_SOURCES: Readonly<Record<string, string>> = {
  config: "from the config",
  schedule: "from the config's schedule",
  parent: "set by the parent",
};

/** One transfer as `transfers --json` prints it: bytes as bytes, the rate in bits per second. */
export function transferJson(transfer: Transfer) {
  return {
    fragment_id: transfer.fragment_id,
    peer: transfer.peer,
    direction: transfer.direction,
    priority: transfer.priority,
    state: transfer.state,
    bytes_done: transfer.bytes_done,
    bytes_total: transfer.total,
    // The node measures bytes; links are sold and capped in bits.
    rate_bits_per_second: Math.round(transfer.rate * 8),
    eta_ms: transfer.eta_ms > 0 ? transfer.eta_ms : null,
    resent_bytes: transfer.resent,
    attempts: transfer.attempts,
    last_error: transfer.last_error || null,
  };
}

/** The `transfers --json` shape (also each line of `--watch --json`), at the time `atMs` it was read. */
export function transfersJson(result: ListTransfersResponse, atMs: number) {
  return {
    at: new Date(atMs).toISOString(),
    cap_bits_per_second: result.cap_bits_per_second > 0 ? result.cap_bits_per_second : null,
    cap_source: result.cap_source,
    transfers: result.transfers.map(transferJson),
  };
}

/** The cap on the parent link in words: `20 Mbit/s set by the parent`, or `none`. */
export function capText(result: ListTransfersResponse): string {
  if (result.cap_bits_per_second <= 0) return "none";
  const source = CAP_SOURCES[result.cap_source] ?? `from ${printable(result.cap_source)}`;
  return `${formatBandwidth(result.cap_bits_per_second)} (${result.cap_bits_per_second} bits per second) ${source}`;
}

/** Time left as the table shows it: `-` when unknown, `<1s`, else `1m 5s`. */
export function etaText(etaMs: number): string {
  if (etaMs <= 0) return "-";
  if (etaMs < 1_000) return "<1s";
  return formatDuration(Math.round(etaMs / 1_000) * 1_000);
}

/**
 * A bar of `width` cells and the whole percent done, `[#####---------------]  25%`. The
 * percent rounds down, so that 100% means every byte is there; an unknown total is `?`.
 */
export function progressBar(done: number, total: number, width = 20): string {
  if (total <= 0) return `[${"-".repeat(width)}]    ?`;
  const fraction = Math.min(1, Math.max(0, done / total));
  const filled = Math.floor(fraction * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
}

/** Options of {@link transfersText}. */
export interface TransfersTextOptions {
  /** A progress bar per job, for `--watch`. */
  bars?: boolean;
}

/** The cap line and a table of the jobs, newest states as the node reports them. */
export function transfersText(result: ListTransfersResponse, options: TransfersTextOptions = {}): string {
  const header = ["FRAGMENT", "PEER", "DIRECTION", "PRIORITY", "STATE", ...(options.bars ? ["PROGRESS"] : []), "DONE", "TOTAL", "RATE", "ETA", "RESENT", "ATTEMPTS", "LAST ERROR"];
  const rows = result.transfers.map((t) => [
    t.fragment_id,
    t.peer,
    t.direction,
    t.priority,
    t.state,
    ...(options.bars ? [progressBar(t.bytes_done, t.total)] : []),
    formatBytes(t.bytes_done),
    formatBytes(t.total),
    t.rate > 0 ? formatBandwidth(Math.round(t.rate * 8)) : "-",
    etaText(t.eta_ms),
    formatBytes(t.resent),
    String(t.attempts),
    printable(t.last_error) || "-",
  ]);
  const table = rows.length > 0 ? tableText(header, rows) : "";
  return `cap on the parent link: ${capText(result)}\n${table}${rows.length} transfer(s)\n`;
}
