import type {
  ApplyPolicyResponse,
  AuthorizeResponse,
  GetPolicyStatusResponse,
  PolicyChange,
  PolicyState,
  ShowPolicyResponse,
} from "../gen/vmtree/v1/admin.ts";
import type { PolicyBinding, PolicySet, PolicyVersion } from "../gen/vmtree/v1/policy.ts";
import { formatDuration } from "../node/policy-operations.ts";
import { printable } from "./format.ts";

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
const versionsText = (versions: readonly PolicyVersion[]) => (versions.length === 0 ? "none" : versions.map((v) => `${v.author} v${v.version}`).join(", "));

/** One binding as `policy show --json` prints it: the document's field names. */
function bindingJson(binding: PolicyBinding) {
  return {
    id: binding.id,
    subject: binding.subject,
    ...(binding.role ? { role: binding.role } : { action: binding.action }),
    scope: binding.scope,
    cameras: binding.cameras,
    camera_types: binding.camera_types,
    effect: binding.effect,
    valid_from: iso(binding.valid_from_ms),
    valid_until: iso(binding.valid_until_ms),
    valid_from_implied: binding.valid_from_implied,
    valid_until_implied: binding.valid_until_implied,
  };
}

/** A policy set as the `policy` commands print it with --json. */
export function policySetJson(set: PolicySet) {
  const document = set.document;
  return {
    author: set.author,
    version: set.version,
    createdAt: iso(set.created_ms),
    createdBy: set.created_by,
    sha256: set.sha256,
    maxPolicyAgeMs: document?.max_policy_age_ms || null,
    roles: Object.fromEntries((document?.roles ?? []).map((role) => [role.name, role.actions])),
    groups: Object.fromEntries((document?.groups ?? []).map((group) => [group.name, group.users])),
    bindings: (document?.bindings ?? []).map(bindingJson),
  };
}

export function policyChangeJson(change: PolicyChange) {
  return { kind: change.kind, name: change.name, change: change.change };
}

/** The policy part of `status --json`, also in `policy show --json`. */
export function policyStateJson(state: PolicyState) {
  return {
    versions: state.versions.map((v) => ({ author: v.author, version: v.version })),
    syncedAt: iso(state.synced_ms),
    ageMs: state.age_ms,
    maxAgeMs: state.max_age_ms || null,
    stale: state.stale,
    damaged: state.damaged,
  };
}

/** A line saying how fresh the policies are. */
export function policyStateText(state: PolicyState): string {
  // Age 0: a root's own, or a child's while its parent link is up and caught up.
  const age = state.age_ms < 0 ? "never received from the parent" : state.age_ms === 0 ? "current" : `${formatDuration(state.age_ms)} old (last in sync ${iso(state.synced_ms)})`;
  const limit = state.max_age_ms > 0 ? `; max age ${formatDuration(state.max_age_ms)}` : "";
  const damaged = state.damaged.length > 0 ? `; DAMAGED, every request is denied: ${state.damaged.map(printable).join("; ")}` : "";
  return `${versionsText(state.versions)}; ${age}${limit}${state.stale ? "; STALE: every request is denied" : ""}${damaged}`;
}

const CHANGE_MARK: Record<string, string> = { added: "+", removed: "-", changed: "~" };

export function policyApplyText(file: string, result: ApplyPolicyResponse): string {
  const set = result.set!;
  if (set.version === result.previous_version) return `${file} equals ${set.author} version ${set.version} in force; nothing applied\n`;
  if (result.changes.length === 0) return `applied ${file} as ${set.author} version ${set.version}: no rules\n`;
  const was = result.previous_version > 0 ? ` (was ${result.previous_version})` : "";
  const lines = [
    `applied ${file} as ${set.author} version ${set.version}${was}: ${result.changes.length} change${result.changes.length === 1 ? "" : "s"}`,
    ...result.changes.map((c) => `  ${CHANGE_MARK[c.change] ?? "?"} ${c.kind} ${c.name}`),
  ];
  return `${lines.join("\n")}\n`;
}

function bindingText(binding: PolicyBinding): string {
  const what = binding.role ? `role ${binding.role}` : binding.action;
  const cameras = [...binding.cameras.map((c) => `camera ${c}`), ...binding.camera_types.map((t) => `type ${t}`)];
  const from = binding.valid_from_ms ? ` from ${iso(binding.valid_from_ms)}${binding.valid_from_implied ? " (first applied)" : ""}` : "";
  const until = binding.valid_until_ms ? ` until ${iso(binding.valid_until_ms)}${binding.valid_until_implied ? " (12 months, implied)" : ""}` : "";
  return `    ${binding.effect.padEnd(5)} ${printable(binding.id)}: ${printable(binding.subject)} ${what} on ${binding.scope}${cameras.length > 0 ? ` (${cameras.map(printable).join(", ")})` : ""}${from}${until}`;
}

export function policyShowText(result: ShowPolicyResponse): string {
  const lines: string[] = [];
  if (result.sets.length === 0) lines.push("no policy sets: every request is denied");
  for (const held of result.sets) {
    const set = held.set!;
    const document = set.document;
    lines.push(`${set.author} version ${set.version} (${held.source === "local" ? "local" : "inherited, read-only"}), applied ${iso(set.created_ms)} by ${printable(set.created_by)}`);
    for (const role of document?.roles ?? []) lines.push(`  role ${role.name}: ${role.actions.join(", ")}`);
    for (const group of document?.groups ?? []) lines.push(`  group ${group.name}: ${group.users.map(printable).join(", ")}`);
    lines.push(`  bindings (${document?.bindings.length ?? 0}):`);
    for (const binding of document?.bindings ?? []) lines.push(bindingText(binding));
    if (document?.max_policy_age_ms) lines.push(`  max_policy_age ${formatDuration(document.max_policy_age_ms)}`);
  }
  lines.push(`policy    ${policyStateText(result.state!)}`);
  return `${lines.join("\n")}\n`;
}

/** The `policy status --json` shape. */
export function policyStatusJson(status: GetPolicyStatusResponse) {
  return {
    current: status.current.map((v) => ({ author: v.author, version: v.version })),
    nodes: status.nodes.map((n) => ({
      site: n.site,
      versions: n.versions.map((v) => ({ author: v.author, version: v.version })),
      appliedAt: iso(n.applied_ms),
      behind: n.behind,
    })),
  };
}

export function policyStatusText(status: GetPolicyStatusResponse): string {
  const siteWidth = Math.max(...status.nodes.map((n) => n.site.length));
  const versionsWidth = Math.max(...status.nodes.map((n) => versionsText(n.versions).length));
  const lines = [
    `latest    ${versionsText(status.current)}`,
    ...status.nodes.map((n) => `  ${n.site.padEnd(siteWidth)}  ${versionsText(n.versions).padEnd(versionsWidth)}  ${n.applied_ms > 0 ? `applied ${iso(n.applied_ms)}` : "never reported"}${n.behind ? "  BEHIND" : ""}`),
  ];
  const behind = status.nodes.filter((n) => n.behind).length;
  if (status.current.length === 0) lines.push("no policy sets are held here: every request is denied");
  else lines.push(behind === 0 ? "all nodes have applied the latest versions" : `${behind} node${behind === 1 ? "" : "s"} behind`);
  return `${lines.join("\n")}\n`;
}

/** The decision, then its reason, which names the deciding binding when there is one. */
export function authorizeText(result: AuthorizeResponse): string {
  return `${result.decision.toUpperCase()}: ${printable(result.reason)}\n`;
}
