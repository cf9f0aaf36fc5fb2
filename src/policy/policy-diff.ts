import type { PolicyChange } from "../gen/vmtree/v1/admin.ts";
import type { PolicyBinding, PolicyDocument, PolicyGroup, PolicyRole } from "../gen/vmtree/v1/policy.ts";

/**
 * What `next` changes against `previous` (undefined: nothing was in force, so everything is
 * added): roles and groups matched by name, bindings by id (so a binding without an id is
 * matched by its position), and the setting `max_policy_age` (added when it goes from off to
 * on, removed when back to off). Sorted by kind, then name, in UTF-16 code-unit order (so
 * `bindings[10]` sorts before `bindings[2]`). Empty when the documents are equal.
 */
export function diffPolicies(previous: PolicyDocument | undefined, next: PolicyDocument): PolicyChange[] {
  const changes = [
    ...diffNamed("role", previous?.roles ?? [], next.roles, (role: PolicyRole) => role.name, roleKey),
    ...diffNamed("group", previous?.groups ?? [], next.groups, (group: PolicyGroup) => group.name, groupKey),
    ...diffNamed("binding", previous?.bindings ?? [], next.bindings, (binding: PolicyBinding) => binding.id, bindingKey),
    ...diffSetting(previous?.max_policy_age_ms ?? 0, next.max_policy_age_ms),
  ];
  return changes.sort((a, b) => compare(a.kind, b.kind) || compare(a.name, b.name));
}

function diffNamed<T>(
  kind: string,
  before: readonly T[],
  after: readonly T[],
  nameOf: (item: T) => string,
  keyOf: (item: T) => string,
): PolicyChange[] {
  const old = new Map(before.map((item) => [nameOf(item), keyOf(item)]));
  const changes: PolicyChange[] = [];
  for (const item of after) {
    const name = nameOf(item);
    const was = old.get(name);
    if (was === undefined) changes.push({ kind, name, change: "added" });
    else if (was !== keyOf(item)) changes.push({ kind, name, change: "changed" });
    old.delete(name);
  }
  for (const name of old.keys()) changes.push({ kind, name, change: "removed" });
  return changes;
}

function diffSetting(before: number, after: number): PolicyChange[] {
  if (before === after) return [];
  const change = before === 0 ? "added" : after === 0 ? "removed" : "changed";
  return [{ kind: "setting", name: "max_policy_age", change }];
}

// Comparison keys list the proto fields explicitly, so extra properties never count as a change.
function roleKey(role: PolicyRole): string {
  return JSON.stringify(role.actions);
}

function groupKey(group: PolicyGroup): string {
  return JSON.stringify(group.users);
}

function bindingKey(binding: PolicyBinding): string {
  return JSON.stringify([
    binding.subject,
    binding.role,
    binding.action,
    binding.scope,
    binding.cameras,
    binding.camera_types,
    binding.effect,
    binding.valid_from_ms,
    binding.valid_until_ms,
    binding.valid_until_implied,
  ]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
