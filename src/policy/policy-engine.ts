import { VmtreeError } from "../errors.ts";
import type { PolicyBinding, PolicySet } from "../gen/vmtree/v1/policy.ts";
import { describeValue } from "../inventory/input-problem.ts";
import { isInSubtree } from "../pki/site-id.ts";
import { isPolicyAction, unknownAction } from "./policy-rules.ts";
import { formatInstant } from "./policy-time.ts";

/** One request to decide: may `user` do `action` on `camera` of `site` at `atMs`? */
export interface DecisionRequest {
  /** A user name, without the `user:` prefix. */
  readonly user: string;
  /** One of `POLICY_ACTIONS`; anything else throws. */
  readonly action: string;
  /** The camera's site id. */
  readonly site: string;
  readonly camera: string;
  /** The camera's type from the inventory; undefined when the inventory does not know the camera. */
  readonly cameraType: string | undefined;
  readonly atMs: number;
}

/**
 * The answer, shaped like `AuthorizeResponse`. `binding`, `origin` (the set's author) and
 * `version` name the binding that decided; they are `""`, `""` and 0 when none did (default
 * deny, unknown camera), also when only an expired or not yet valid grant matched: that
 * grant is named in `reason` instead, because it did not decide.
 */
export interface Decision {
  decision: "allow" | "deny";
  binding: string;
  origin: string;
  version: number;
  reason: string;
}

/** A binding prepared for deciding: its role resolved to actions, its lists to sets. */
interface IndexedBinding {
  readonly binding: PolicyBinding;
  /** Position in its set's document: decisions take the first match in file order. */
  readonly position: number;
  readonly actions: ReadonlySet<string>;
  readonly cameras: ReadonlySet<string>;
  readonly cameraTypes: ReadonlySet<string>;
}

interface IndexedSet {
  readonly author: string;
  readonly version: number;
  /** Bindings by subject (`user:NAME`, `group:NAME`), each list in file order. */
  readonly bySubject: ReadonlyMap<string, readonly IndexedBinding[]>;
  /** The groups of the set that list each user. */
  readonly groupsOf: ReadonlyMap<string, readonly string[]>;
}

/** The binding that decided, or the grant that would have allowed at another time. */
interface Match {
  readonly set: IndexedSet;
  readonly binding: PolicyBinding;
}

/**
 * Decides requests from the policy sets a node holds, with no I/O, so that a site
 * decides on its own while its parent is unreachable. Deny overrides: a matching deny in any
 * set wins over every allow, so a descendant cannot widen an ancestor's deny; otherwise the
 * first matching allow allows; otherwise deny. Indexes are built once, so a decision looks
 * only at the bindings of the user and the user's groups, not at every binding held.
 */
export class PolicyEngine {
  private readonly sets: readonly IndexedSet[];

  /** `sets` root first: the ancestors' sets from the top, then the node's own. */
  constructor(sets: readonly PolicySet[]) {
    this.sets = sets.map(indexSet);
  }

  /**
   * Decides `request`. When several bindings match, the one reported is the first in set
   * order (root first) and file order: a deny of an ancestor is named over a descendant's.
   * Throws `invalid_argument` for an action that is not one of `POLICY_ACTIONS`.
   */
  decide(request: DecisionRequest): Decision {
    if (!isPolicyAction(request.action)) throw new VmtreeError("invalid_argument", unknownAction(request.action));
    if (request.cameraType === undefined) {
      return noBinding(`camera ${describeValue(request.camera)} is not in the inventory of ${request.site}`);
    }
    let allow: Match | undefined;
    let inactive: Match | undefined;
    for (const set of this.sets) {
      for (const indexed of candidates(set, request.user)) {
        if (!covers(indexed, request)) continue;
        const binding = indexed.binding;
        if (!isActive(binding, request.atMs)) {
          if (binding.effect === "allow") inactive ??= { set, binding };
          continue;
        }
        if (binding.effect === "deny") return decided("deny", { set, binding }, "denied");
        allow ??= { set, binding };
      }
    }
    if (allow !== undefined) return decided("allow", allow, "allowed");
    const none = `no binding allows ${request.action} for user ${describeValue(request.user)} on camera ${describeValue(request.camera)} at ${request.site}`;
    return noBinding(inactive === undefined ? none : `${none}: ${inactiveReason(inactive, request.atMs)}`);
  }
}

function indexSet(set: PolicySet): IndexedSet {
  const document = set.document;
  const roles = new Map((document?.roles ?? []).map((role) => [role.name, new Set(role.actions)]));
  const bySubject = new Map<string, IndexedBinding[]>();
  for (const [position, binding] of (document?.bindings ?? []).entries()) {
    const indexed: IndexedBinding = {
      binding,
      position,
      actions: binding.action !== "" ? new Set([binding.action]) : (roles.get(binding.role) ?? new Set()),
      cameras: new Set(binding.cameras),
      cameraTypes: new Set(binding.camera_types),
    };
    const list = bySubject.get(binding.subject);
    if (list === undefined) bySubject.set(binding.subject, [indexed]);
    else list.push(indexed);
  }
  const groupsOf = new Map<string, string[]>();
  for (const group of document?.groups ?? []) {
    for (const user of group.users) {
      const groups = groupsOf.get(user);
      if (groups === undefined) groupsOf.set(user, [group.name]);
      else groups.push(group.name);
    }
  }
  return { author: set.author, version: set.version, bySubject, groupsOf };
}

// The user's own bindings and those of the user's groups, merged back into file order.
function candidates(set: IndexedSet, user: string): readonly IndexedBinding[] {
  const own = set.bySubject.get(`user:${user}`) ?? [];
  const groups = set.groupsOf.get(user);
  if (groups === undefined) return own;
  const all = [...own];
  for (const group of groups) all.push(...(set.bySubject.get(`group:${group}`) ?? []));
  return all.sort((a, b) => a.position - b.position);
}

// Both lists given: a camera listed by id or of a listed type is covered.
function covers(indexed: IndexedBinding, request: DecisionRequest): boolean {
  if (!indexed.actions.has(request.action) || !isInSubtree(request.site, indexed.binding.scope)) return false;
  const byId = indexed.cameras.size > 0;
  const byType = indexed.cameraTypes.size > 0;
  if (!byId && !byType) return true;
  return (byId && indexed.cameras.has(request.camera)) || (byType && indexed.cameraTypes.has(request.cameraType ?? ""));
}

function isActive(binding: PolicyBinding, atMs: number): boolean {
  return (binding.valid_from_ms === 0 || binding.valid_from_ms <= atMs) && (binding.valid_until_ms === 0 || atMs < binding.valid_until_ms);
}

function decided(decision: "allow" | "deny", match: Match, verb: string): Decision {
  const { set, binding } = match;
  return {
    decision,
    binding: binding.id,
    origin: set.author,
    version: set.version,
    reason: `${verb} by binding ${binding.id} of ${set.author} version ${set.version}`,
  };
}

function noBinding(reason: string): Decision {
  return { decision: "deny", binding: "", origin: "", version: 0, reason };
}

function inactiveReason(match: Match, atMs: number): string {
  const { set, binding } = match;
  const grant = `grant ${binding.id} of ${set.author} version ${set.version}`;
  if (binding.valid_until_ms !== 0 && atMs >= binding.valid_until_ms) {
    return `${grant} expired at ${formatInstant(binding.valid_until_ms)}`;
  }
  return `${grant} is valid only from ${formatInstant(binding.valid_from_ms)}`;
}
