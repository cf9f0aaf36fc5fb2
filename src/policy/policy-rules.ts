import type { PolicyBinding, PolicyDocument, PolicyGroup, PolicyRole } from "../gen/vmtree/v1/policy.ts";
import { CAMERA_TYPES } from "../inventory/camera.ts";
import { describeValue } from "../inventory/input-problem.ts";
import { checkSiteId, isInSubtree } from "../pki/site-id.ts";
import { formatInstant } from "./policy-time.ts";

/** Every action a binding or role can grant or deny. */
export const POLICY_ACTIONS = [
  "view_live",
  "view_archive",
  "export_fragment",
  "ptz_control",
  "manage_cameras",
  "manage_policies",
  "read_audit",
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** The most a document may hold; beyond these a file is a mistake, and every site would pay for it. */
export const POLICY_LIMITS = { bindings: 100_000, roles: 10_000, groups: 10_000, usersPerGroup: 10_000, camerasPerBinding: 10_000 } as const;

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const BINDING_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SUBJECT = /^(?<kind>user|group):(?<name>.*)$/s;
const MAX_CAMERA_ID_CHARS = 128;
// Controls and the bidirectional overrides: `authorize` refuses them in a camera id, so a
// binding naming one could never match.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const MAX_AGE_MS = 3650 * 86_400_000;

const NAME_RULE = "1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit";
const USER_RULE = "1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit";
const ID_RULE = "1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit";

/**
 * A broken rule. `path` locates it in the file layout (`["bindings", 2, "cameras", 0]`,
 * `["roles", "operator", 1]`) so that a parser can find its line; `item` and `field` name it
 * for people (`bindings[2] (id ops-view)`, `valid_until`); `message` names the bad value.
 */
export interface PolicyProblem {
  readonly path: readonly (string | number)[];
  readonly item?: string;
  readonly field?: string;
  readonly message: string;
}

/** What a binding's references resolve against: the author and the names the same document defines. */
export interface BindingContext {
  readonly author: string;
  readonly roles: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
  /** Ids of the bindings before this one; the check adds this binding's id. */
  readonly seenIds: Set<string>;
}

/**
 * Checks a whole document as the rules of a policy set require, whoever wrote it: names,
 * references, scopes inside `author`'s subtree, date order and limits. It does not check the
 * 12-month term against the clock (R-22): that is the author's check when it applies a file.
 * Returns the first problem in document order.
 */
export function checkDocument(document: PolicyDocument, author: string): PolicyProblem | undefined {
  const problem =
    checkMaxPolicyAge(document.max_policy_age_ms) ??
    checkRoles(document.roles) ??
    checkGroups(document.groups) ??
    checkBindingCount(document.bindings.length);
  if (problem !== undefined) return problem;
  const context = bindingContext(author, document.roles, document.groups);
  for (const [index, binding] of document.bindings.entries()) {
    const bad = checkBinding(binding, index, context);
    if (bad !== undefined) return bad;
  }
  return undefined;
}

/** A fresh context for checking the bindings of one document, in order. */
export function bindingContext(author: string, roles: readonly PolicyRole[], groups: readonly PolicyGroup[]): BindingContext {
  return {
    author,
    roles: new Set(roles.map((role) => role.name)),
    groups: new Set(groups.map((group) => group.name)),
    seenIds: new Set(),
  };
}

/** Checks the number of bindings against {@link POLICY_LIMITS}; a parser checks it before reading them. */
export function checkBindingCount(count: number): PolicyProblem | undefined {
  return checkCount("bindings", count, POLICY_LIMITS.bindings);
}

/** Checks the setting `max_policy_age`: 0 (off) up to 10 years. */
export function checkMaxPolicyAge(ms: number): PolicyProblem | undefined {
  if (Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_AGE_MS) return undefined;
  return { path: ["max_policy_age"], field: "max_policy_age", message: `${describeValue(ms)} ms is not between 0 and 10 years` };
}

/** Checks the count, names (unique) and actions of the roles. */
export function checkRoles(roles: readonly PolicyRole[]): PolicyProblem | undefined {
  const tooMany = checkCount("roles", roles.length, POLICY_LIMITS.roles);
  if (tooMany !== undefined) return tooMany;
  const seen = new Set<string>();
  for (const role of roles) {
    const problem = checkName("roles", role.name, seen) ?? checkRoleActions(role);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function checkRoleActions(role: PolicyRole): PolicyProblem | undefined {
  const item = `roles.${role.name}`;
  if (role.actions.length === 0) {
    return { path: ["roles", role.name], item, message: "the role lists no action; give at least one" };
  }
  for (const [index, action] of role.actions.entries()) {
    if (!isPolicyAction(action)) return { path: ["roles", role.name, index], item, message: unknownAction(action) };
  }
  return undefined;
}

/** Checks the count, names (unique) and users of the groups. */
export function checkGroups(groups: readonly PolicyGroup[]): PolicyProblem | undefined {
  const tooMany = checkCount("groups", groups.length, POLICY_LIMITS.groups);
  if (tooMany !== undefined) return tooMany;
  const seen = new Set<string>();
  for (const group of groups) {
    const problem = checkName("groups", group.name, seen) ?? checkGroupUsers(group);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function checkGroupUsers(group: PolicyGroup): PolicyProblem | undefined {
  const item = `groups.${group.name}`;
  if (group.users.length > POLICY_LIMITS.usersPerGroup) {
    return { path: ["groups", group.name], item, message: `${group.users.length} users are more than the limit of ${POLICY_LIMITS.usersPerGroup} per group` };
  }
  for (const [index, user] of group.users.entries()) {
    if (!USER_NAME.test(user)) {
      return { path: ["groups", group.name, index], item, message: `${describeValue(user)} is not a user name (${USER_RULE})` };
    }
  }
  return undefined;
}

function checkName(list: "roles" | "groups", name: string, seen: Set<string>): PolicyProblem | undefined {
  const what = list === "roles" ? "role" : "group";
  if (!NAME.test(name)) return { path: [list, name], item: list, message: `${describeValue(name)} is not a ${what} name (${NAME_RULE})` };
  if (seen.has(name)) return { path: [list, name], item: list, message: `${what} ${name} is defined twice` };
  seen.add(name);
  return undefined;
}

function checkCount(list: "roles" | "groups" | "bindings", count: number, limit: number): PolicyProblem | undefined {
  if (count <= limit) return undefined;
  return { path: [list], field: list, message: `${count} ${list} are more than the limit of ${limit}` };
}

/** The name of binding `index` in messages: `bindings[2] (id ops-view)`, or `bindings[2]` when the file gave no id. */
export function bindingItem(index: number, id: string | undefined): string {
  // A malformed id is shown in the message about it, not in every line that names the binding.
  return id !== undefined && BINDING_ID.test(id) ? `bindings[${index}] (id ${id})` : `bindings[${index}]`;
}

/** The id of a binding that the document gave none: `bindings[N]`, counted from 0. */
export function implicitBindingId(index: number): string {
  return `bindings[${index}]`;
}

type BindingCheck = (binding: PolicyBinding, context: BindingContext, index: number) => readonly [field: string, message: string, at?: number] | undefined;

// In the order of the fields in a written binding, so that the first problem is the first in the file.
const BINDING_CHECKS: readonly BindingCheck[] = [
  checkId,
  checkSubject,
  checkGrant,
  checkScope,
  checkCameras,
  checkCameraTypes,
  checkEffect,
  checkDates,
];

/** Checks one binding against its document's roles, groups and author; records its id in `context.seenIds`. */
export function checkBinding(binding: PolicyBinding, index: number, context: BindingContext): PolicyProblem | undefined {
  for (const check of BINDING_CHECKS) {
    const found = check(binding, context, index);
    if (found !== undefined) {
      const [field, message, at] = found;
      const path = at === undefined ? ["bindings", index, field] : ["bindings", index, field, at];
      return { path, item: bindingItem(index, binding.id), field, message };
    }
  }
  return undefined;
}

function checkId(binding: PolicyBinding, context: BindingContext, index: number): readonly [string, string] | undefined {
  const id = binding.id;
  if (id !== implicitBindingId(index) && !BINDING_ID.test(id)) return ["id", `${describeValue(id)} is not a binding id (${ID_RULE})`];
  if (context.seenIds.has(id)) return ["id", `${describeValue(id)} is the id of an earlier binding too; ids must be unique`];
  context.seenIds.add(id);
  return undefined;
}

function checkSubject(binding: PolicyBinding, context: BindingContext): readonly [string, string] | undefined {
  const parts = SUBJECT.exec(binding.subject)?.groups;
  const name = parts?.["name"] ?? "";
  if (parts === undefined) return ["subject", `${describeValue(binding.subject)} is not a subject (expected user:NAME or group:NAME)`];
  if (parts["kind"] === "user" && !USER_NAME.test(name)) {
    return ["subject", `${describeValue(binding.subject)} does not name a user (${USER_RULE})`];
  }
  if (parts["kind"] === "group" && !context.groups.has(name)) {
    return ["subject", `${describeValue(binding.subject)} names a group that groups does not define`];
  }
  return undefined;
}

function checkGrant(binding: PolicyBinding, context: BindingContext): readonly [string, string] | undefined {
  if (binding.role !== "" && binding.action !== "") return ["role", "role and action are both given; give exactly one"];
  if (binding.role === "" && binding.action === "") return ["role", "neither role nor action is given; give exactly one"];
  if (binding.action !== "") return isPolicyAction(binding.action) ? undefined : ["action", unknownAction(binding.action)];
  return context.roles.has(binding.role) ? undefined : ["role", `${describeValue(binding.role)} is not a role that roles defines`];
}

function checkScope(binding: PolicyBinding, context: BindingContext): readonly [string, string] | undefined {
  const site = checkSiteId(binding.scope);
  if (!site.ok) return ["scope", site.error.rawMessage];
  if (!isInSubtree(binding.scope, context.author)) {
    return ["scope", `${describeValue(binding.scope)} is outside the subtree of ${context.author}, the author`];
  }
  return undefined;
}

function checkCameras(binding: PolicyBinding): readonly [string, string, number] | undefined {
  if (binding.cameras.length > POLICY_LIMITS.camerasPerBinding) {
    return ["cameras", `${binding.cameras.length} cameras are more than the ${POLICY_LIMITS.camerasPerBinding} a binding may list`, POLICY_LIMITS.camerasPerBinding];
  }
  for (const [index, camera] of binding.cameras.entries()) {
    if (camera.length === 0 || camera.length > MAX_CAMERA_ID_CHARS || CONTROL.test(camera)) {
      return ["cameras", `${describeValue(camera)} is not a camera id (1 to ${MAX_CAMERA_ID_CHARS} characters, no control characters or direction overrides)`, index];
    }
  }
  return undefined;
}

function checkCameraTypes(binding: PolicyBinding): readonly [string, string, number] | undefined {
  for (const [index, type] of binding.camera_types.entries()) {
    if (!(CAMERA_TYPES as readonly string[]).includes(type)) {
      return ["camera_types", `${describeValue(type)} is not a camera type (expected one of ${CAMERA_TYPES.join(", ")})`, index];
    }
  }
  return undefined;
}

function checkEffect(binding: PolicyBinding): readonly [string, string] | undefined {
  if (binding.effect === "allow" || binding.effect === "deny") return undefined;
  return ["effect", `${describeValue(binding.effect)} is not an effect (expected allow or deny)`];
}

function checkDates(binding: PolicyBinding): readonly [string, string] | undefined {
  const from = binding.valid_from_ms;
  const until = binding.valid_until_ms;
  if (!Number.isSafeInteger(from) || from < 0) return ["valid_from", `${describeValue(from)} ms is not an instant`];
  if (!Number.isSafeInteger(until) || until < 0) return ["valid_until", `${describeValue(until)} ms is not an instant`];
  if (from > 0 && until > 0 && until <= from) {
    return ["valid_until", `${formatInstant(until)} is not after valid_from ${formatInstant(from)}`];
  }
  // a grant without an end would outlive every review; the author's parser always sets one.
  if (binding.effect === "allow" && until === 0) return ["valid_until", "an allow has no end; a grant lasts at most 12 months (R-22)"];
  return undefined;
}

const ACTIONS: ReadonlySet<string> = new Set(POLICY_ACTIONS);

/** True for the names in {@link POLICY_ACTIONS}. */
export function isPolicyAction(name: string): name is PolicyAction {
  return ACTIONS.has(name);
}

/** Why `name` is refused as an action, listing the known ones. */
export function unknownAction(name: string): string {
  return `${describeValue(name)} is not an action (expected one of ${POLICY_ACTIONS.join(", ")})`;
}
