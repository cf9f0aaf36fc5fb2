import type { AddFragmentResponse, FragmentRequestState } from "../gen/vmtree/v1/admin.ts";
import type { Fragment, FragmentRequest } from "../gen/vmtree/v1/fragment.ts";
import { formatBytes } from "../transfer/bandwidth.ts";
import { printable, tableText } from "./format.ts";

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
/** Recorders cut on whole seconds: the table leaves out the `.000` that JSON keeps. */
const shortIso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

/** One fragment as the `fragments` commands print it with --json. */
export function fragmentJson(fragment: Fragment) {
  return {
    id: fragment.id,
    site: fragment.site,
    camera_id: fragment.camera_id,
    start: iso(fragment.start_ms),
    end: iso(fragment.end_ms),
    size: fragment.size,
    sha256: fragment.sha256,
    incident: fragment.incident,
    file_name: fragment.file_name,
    added_at: iso(fragment.added_ms),
  };
}

/** `fragments add --json`: the fragment and whether it was registered before. */
export function addedJson(added: AddFragmentResponse) {
  return { ...fragmentJson(added.fragment!), already_present: added.already_present };
}

/** What `fragments add` prints: the id, size, SHA-256, and whether nothing changed. */
export function addedText(added: AddFragmentResponse): string {
  const fragment = added.fragment!;
  const what = added.already_present ? "already present" : fragment.incident ? "added (incident)" : "added";
  return `fragment ${fragment.id} ${what}\nsize    ${formatBytes(fragment.size)}\nsha256  ${fragment.sha256}\n`;
}

/** A fixed-width table of fragments, oldest first as the node lists them. */
export function fragmentsText(fragments: readonly Fragment[]): string {
  const rows = fragments.map((f) => [
    f.id, f.site, printable(f.camera_id), shortIso(f.start_ms), shortIso(f.end_ms), formatBytes(f.size), f.incident ? "yes" : "no",
  ]);
  return `${tableText(["ID", "SITE", "CAMERA", "START", "END", "SIZE", "INCIDENT"], rows)}${fragments.length} fragment(s)\n`;
}

/** One request as `fragments request --json` prints it, and inside `fragments requests --json`. */
export function requestJson(request: FragmentRequest) {
  return {
    id: request.id,
    site: request.site,
    camera_id: request.camera_id,
    from: iso(request.from_ms),
    to: iso(request.to_ms),
    reason: request.reason,
    requested_by: request.requested_by,
    requester: request.requester,
    requested_at: iso(request.requested_ms),
  };
}

/** One entry of `fragments requests --json`: the request, its state and the outcome (null while pending). */
export function requestStateJson(state: FragmentRequestState) {
  const outcome = state.outcome;
  return {
    ...requestJson(state.request!),
    state: state.state,
    delivered: state.delivered,
    outcome: outcome
      ? { state: outcome.state, fragments: outcome.fragments.map((f) => f.id), message: outcome.message, answered_at: iso(outcome.answered_ms) }
      : null,
    failures: state.failures.map((f) => ({ fragment_id: f.fragment_id, message: f.message, failed_at: iso(f.failed_ms) })),
  };
}

/** What `fragments request` prints. */
export function requestedText(request: FragmentRequest): string {
  return (
    `request ${request.id} recorded for ${request.site}\n` +
    `camera ${printable(request.camera_id)} from ${shortIso(request.from_ms)} to ${shortIso(request.to_ms)}; ` +
    `\`vmtree fragments requests\` shows its outcome\n`
  );
}

/** Requests one block each: what was asked, by whom and why, and what came of it. */
export function requestsText(states: readonly FragmentRequestState[]): string {
  const blocks = states.map((state) => {
    const r = state.request!;
    const found = state.outcome?.fragments.length ?? 0;
    const progress = ["found", "delivered", "failed"].includes(state.state) ? ` (${state.delivered} of ${found} delivered here)` : "";
    return (
      `${r.id}  ${state.state}${progress}\n` +
      `  ${r.site} camera ${printable(r.camera_id)} from ${shortIso(r.from_ms)} to ${shortIso(r.to_ms)}\n` +
      `  requested by ${printable(r.requested_by)} at ${shortIso(r.requested_ms)}: ${printable(r.reason)}\n` +
      (state.outcome ? `  answered ${shortIso(state.outcome.answered_ms)}: ${printable(state.outcome.message)}\n` : "") +
      state.failures.map((f) => `  could not be sent: ${f.fragment_id} at ${shortIso(f.failed_ms)}: ${printable(f.message)}\n`).join("")
    );
  });
  return `${blocks.join("")}${states.length} request(s)\n`;
}
