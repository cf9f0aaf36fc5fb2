/**
 * Policy files (R-6.3, R-21…27): what `vmtree policy apply` reads. JSON when the file name
 * ends in `.json`, YAML otherwise; UTF-8 (a BOM is allowed), at most 4 MiB.
 *
 * ```yaml
 * roles:                      # optional: role name -> at least one action
 *   operator: [view_live, ptz_control]
 * groups:                     # optional: group name -> user names
 *   duty-officers: [a.nurlanov, b.sadykova]
 * max_policy_age: 72h         # optional: 90s, 30m, 72h, 7d; deny when the policy is older
 * bindings:                   # required, may be empty; the first that matches is reported
 *   - id: duty-live           # optional, unique; bindings[N] (from 0) when left out
 *     subject: group:duty-officers   # user:NAME or group:NAME (a group defined above)
 *     role: operator          # exactly one of role (defined above) and action
 *     scope: kz.ala           # a site id: that site and its subtree, inside the author's
 *     camera_types: [outdoor_overview]   # optional; and/or cameras: [camera ids]
 *     effect: allow           # allow or deny
 *     valid_from: 2026-12-04  # optional; YYYY-MM-DD (00:00 UTC) or ISO 8601 date-time with Z or offset
 *     valid_until: 2027-06-30T18:00:00+05:00
 * ```
 *
 * Names: roles and groups `[a-z0-9][a-z0-9_-]{0,63}`; users `[A-Za-z0-9][A-Za-z0-9._@-]{0,127}`;
 * binding ids `[a-z0-9][a-z0-9._-]{0,63}`. Actions: see `POLICY_ACTIONS`. Unknown keys are refused.
 * Limits: 100,000 bindings, 10,000 roles, 10,000 groups, 10,000 users per group.
 *
 * An allow lasts at most 12 calendar months from valid_from, or from the moment it is
 * applied when valid_from is left out. An allow without valid_until ends 12 months after its
 * start (`valid_until_implied`); re-applying it unchanged keeps that end instead of moving it.
 * A deny may leave out both dates. An explicit empty `cameras` or `camera_types` list is refused:
 * it reads like "no cameras" but would mean "every camera".
 */
import type { PolicyBinding, PolicyDocument, PolicyGroup, PolicyRole } from "../gen/vmtree/v1/policy.ts";
import { VmtreeError, type Result } from "../errors.ts";
import { decodeUtf8 } from "../inventory/decode-utf8.ts";
import { describeValue } from "../inventory/input-problem.ts";
import {
  bindingContext,
  bindingItem,
  checkBinding,
  checkBindingCount,
  checkGroups,
  checkRoles,
  implicitBindingId,
  type BindingContext,
  type PolicyProblem,
} from "./policy-rules.ts";
import { readPolicySource, type PolicySource } from "./policy-source.ts";
import { addCalendarMonths, checkDuration, formatInstant, parsePolicyInstant } from "./policy-time.ts";

/**
 * The largest policy file accepted, in bytes: 4 MiB, room for some 20,000 bindings as people
 * write them (one per 150 to 200 bytes), so it binds before the 100,000-binding limit does.
 */
export const MAX_POLICY_BYTES = 4 * 1024 * 1024;

/** Who applies the file and when; `previous` is the document in force, if any. */
export interface PolicyContext {
  /** The authoring node's site id: every scope must lie in its subtree. */
  readonly author: string;
  readonly nowMs: number;
  readonly previous?: PolicyDocument;
}

const TOP_KEYS = ["roles", "groups", "bindings", "max_policy_age"] as const;
const BINDING_KEYS = [
  "id",
  "subject",
  "role",
  "action",
  "scope",
  "cameras",
  "camera_types",
  "effect",
  "valid_from",
  "valid_until",
] as const;
const GRANT_MONTHS = 12;

/**
 * Parses and checks a policy file for `context.author`'s subtree. Returns the document (roles
 * and groups sorted by name, bindings in file order), or an `invalid_input` error for the first
 * problem, formatted `FILE line N, ITEM, field F: MESSAGE` with the parts that apply, e.g.
 * `policy.yaml line 9, bindings[0], field scope: "kz.ast" is outside the subtree of kz.ala, the author`.
 * Never returns part of a file.
 */
export function parsePolicyDocument(fileName: string, content: Uint8Array, context: PolicyContext): Result<PolicyDocument> {
  const fail = (line: number | undefined, problem: Omit<PolicyProblem, "path">): Result<PolicyDocument> => ({
    ok: false,
    error: fileError(fileName, line, problem),
  });
  if (content.length > MAX_POLICY_BYTES) {
    return fail(undefined, { message: `${content.length} bytes is more than the limit of ${MAX_POLICY_BYTES} bytes (4 MiB)` });
  }
  const text = decodeUtf8(content);
  if (!text.ok) {
    const { line, offset, byte } = text.error;
    const hex = byte.toString(16).toUpperCase().padStart(2, "0");
    return fail(line, { message: `not UTF-8: invalid byte sequence at offset ${offset} (0x${hex}); save the file as UTF-8` });
  }
  const source = readPolicySource(fileName, text.value);
  if (!source.ok) return fail(source.error.line, source.error);
  try {
    return { ok: true, value: new DocumentReader(source.value, context).read() };
  } catch (reason) {
    if (!(reason instanceof ProblemFound)) throw reason;
    return fail(source.value.lineOf(reason.problem.path), reason.problem);
  }
}

function fileError(fileName: string, line: number | undefined, problem: Omit<PolicyProblem, "path">): VmtreeError {
  const where = [
    line === undefined ? fileName : `${fileName} line ${line}`,
    ...(problem.item === undefined ? [] : [problem.item]),
    ...(problem.field === undefined ? [] : [`field ${problem.field}`]),
  ];
  return new VmtreeError("invalid_input", `${where.join(", ")}: ${problem.message}`);
}

// Unwinds the reader at the first problem; parsePolicyDocument turns it into a value.
class ProblemFound extends Error {
  constructor(readonly problem: PolicyProblem) {
    super(problem.message);
  }
}

function check(problem: PolicyProblem | undefined): void {
  if (problem !== undefined) throw new ProblemFound(problem);
}

type Path = readonly (string | number)[];
type Written = Record<string, unknown>;

/** Where a value sits and how to name it in a message. */
interface Place {
  readonly path: Path;
  readonly item?: string;
  readonly field?: string;
}

class DocumentReader {
  private readonly previous: ReadonlyMap<string, PolicyBinding>;

  constructor(
    private readonly source: PolicySource,
    private readonly context: PolicyContext,
  ) {
    this.previous = new Map((context.previous?.bindings ?? []).map((binding) => [binding.id, binding]));
  }

  read(): PolicyDocument {
    const top = readMap(this.source.value, { path: [] }, "a map with roles, groups and bindings");
    checkKeys(top, TOP_KEYS, { path: [] });
    const roles = readRoles(top["roles"]);
    check(checkRoles(roles));
    const groups = readGroups(top["groups"]);
    check(checkGroups(groups));
    const maxAge = readMaxPolicyAge(top["max_policy_age"]);
    const bindings = this.readBindings(top["bindings"], bindingContext(this.context.author, roles, groups));
    return { roles: byName(roles), groups: byName(groups), bindings, max_policy_age_ms: maxAge };
  }

  private readBindings(value: unknown, rules: BindingContext): PolicyBinding[] {
    const place = { path: ["bindings"], field: "bindings" };
    if (value === undefined) fail(place, "missing; give a list of bindings (an empty list [] for none)");
    const list = readList(value, place, "a list of bindings");
    check(checkBindingCount(list.length));
    return list.map((written, index) => {
      const { binding, untilText } = readBinding(written, index);
      this.setImpliedDates(binding);
      check(checkBinding(binding, index, rules));
      this.checkTerm(binding, index, untilText);
      return binding;
    });
  }

  // An allow without valid_from starts when it is first applied, and one without valid_until
  // ends 12 months after its start. Re-applying the same binding keeps the dates it got the
  // first time, or every apply would silently renew the grant; a binding written
  // differently is a new grant. The binding still holds its written dates (0 when absent).
  private setImpliedDates(binding: PolicyBinding): void {
    if (binding.effect !== "allow") return;
    const before = this.previous.get(binding.id);
    const same = before !== undefined && sameWrittenFields(before, binding);
    if (binding.valid_from_ms === 0) {
      binding.valid_from_implied = true;
      binding.valid_from_ms = same && before.valid_from_implied ? before.valid_from_ms : this.context.nowMs;
    }
    if (binding.valid_until_ms === 0) {
      binding.valid_until_implied = true;
      binding.valid_until_ms = same && before.valid_until_implied ? before.valid_until_ms : addCalendarMonths(binding.valid_from_ms, GRANT_MONTHS);
    }
  }

  private checkTerm(binding: PolicyBinding, index: number, untilText: string | undefined): void {
    if (binding.effect !== "allow" || untilText === undefined) return;
    const end = addCalendarMonths(this.startOf(binding), GRANT_MONTHS);
    if (binding.valid_until_ms <= end) return;
    const start = !binding.valid_from_implied
      ? `valid_from ${formatInstant(binding.valid_from_ms)}`
      : binding.valid_from_ms === this.context.nowMs
        ? `now (${formatInstant(this.context.nowMs)})`
        : `its start when first applied (${formatInstant(binding.valid_from_ms)})`;
    fail(
      { path: ["bindings", index, "valid_until"], item: bindingItem(index, binding.id), field: "valid_until" },
      `${describeValue(untilText)} is more than 12 months after ${start}: a grant lasts at most 12 months (R-22), so it must end by ${formatInstant(end)}`,
    );
  }

  private startOf(binding: PolicyBinding): number {
    return binding.valid_from_ms;
  }
}

/** Whether `held` (as stored, dates implied or not) was written as `written` (dates as in the file). */
function sameWrittenFields(held: PolicyBinding, written: PolicyBinding): boolean {
  const a = { ...held, valid_from_ms: held.valid_from_implied ? 0 : held.valid_from_ms, valid_until_ms: held.valid_until_implied ? 0 : held.valid_until_ms };
  const b = written;
  return (
    a.valid_until_ms === b.valid_until_ms &&
    a.subject === b.subject &&
    a.role === b.role &&
    a.action === b.action &&
    a.scope === b.scope &&
    sameList(a.cameras, b.cameras) &&
    sameList(a.camera_types, b.camera_types) &&
    a.effect === b.effect &&
    a.valid_from_ms === b.valid_from_ms
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

function readRoles(value: unknown): PolicyRole[] {
  if (value === undefined) return [];
  const roles = readMap(value, { path: ["roles"], field: "roles" }, "a map of role names to lists of actions");
  return Object.entries(roles).map(([name, actions]) => ({
    name,
    actions: readStrings(actions, { path: ["roles", name], item: `roles.${name}` }, "a list of actions"),
  }));
}

function readGroups(value: unknown): PolicyGroup[] {
  if (value === undefined) return [];
  const groups = readMap(value, { path: ["groups"], field: "groups" }, "a map of group names to lists of user names");
  return Object.entries(groups).map(([name, users]) => ({
    name,
    users: readStrings(users, { path: ["groups", name], item: `groups.${name}` }, "a list of user names"),
  }));
}

function readMaxPolicyAge(value: unknown): number {
  if (value === undefined) return 0;
  const place = { path: ["max_policy_age"], field: "max_policy_age" };
  const duration = checkDuration(readString(value, place, "a duration like 72h"));
  if (!duration.ok) fail(place, duration.error);
  return duration.value;
}

function readBinding(value: unknown, index: number): { binding: PolicyBinding; untilText: string | undefined } {
  const written = readMap(value, { path: ["bindings", index], item: `bindings[${index}]` }, "a map with subject, scope and effect");
  const givenId = written["id"];
  const id =
    givenId === undefined ? undefined : readString(givenId, { path: ["bindings", index, "id"], item: `bindings[${index}]`, field: "id" }, "a string");
  const item = bindingItem(index, id);
  checkKeys(written, BINDING_KEYS, { path: ["bindings", index], item });
  const place = (name: string): Place => ({ path: ["bindings", index, name], item, field: name });
  const text = (name: string, expected = "a string"): string | undefined =>
    written[name] === undefined ? undefined : readString(written[name], place(name), expected);
  const required = (name: string, expected: string): string =>
    text(name, expected) ?? fail(place(name), `missing; expected ${expected}`);
  const list = (name: string, what: string): string[] => optionalList(written[name], place(name), what);
  const date = (name: string): number => {
    const written = text(name, "a date");
    return written === undefined ? 0 : readInstant(written, place(name));
  };
  const binding: PolicyBinding = {
    id: id ?? implicitBindingId(index),
    subject: required("subject", "user:NAME or group:NAME"),
    role: text("role") ?? "",
    action: text("action") ?? "",
    scope: required("scope", "a site id"),
    cameras: list("cameras", "camera ids"),
    camera_types: list("camera_types", "camera types"),
    effect: required("effect", "allow or deny"),
    valid_from_ms: date("valid_from"),
    valid_until_ms: date("valid_until"),
    valid_until_implied: false,
    valid_from_implied: false,
  };
  return { binding, untilText: text("valid_until") };
}

function optionalList(value: unknown, place: Place, what: string): string[] {
  if (value === undefined) return [];
  const list = readStrings(value, place, `a list of ${what}`);
  if (list.length === 0) {
    fail(place, `the list is empty, which would mean every camera; list ${what} or leave ${place.field} out`);
  }
  return list;
}

function readInstant(text: string, place: Place): number {
  const instant = parsePolicyInstant(text);
  if (!instant.ok) fail(place, instant.error);
  return instant.value;
}

function readMap(value: unknown, place: Place, expected: string): Written {
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    fail(place, `expected ${expected}, got ${describeValue(value)}`);
  }
  return value as Written;
}

function readList(value: unknown, place: Place, expected: string): unknown[] {
  if (!Array.isArray(value)) fail(place, `expected ${expected}, got ${describeValue(value)}`);
  return value;
}

function readStrings(value: unknown, place: Place, expected: string): string[] {
  return readList(value, place, expected).map((item, index) =>
    readString(item, { ...place, path: [...place.path, index] }, "a string"),
  );
}

function readString(value: unknown, place: Place, expected: string): string {
  if (typeof value !== "string") fail(place, `expected ${expected}, got ${describeValue(value)}`);
  return value;
}

function checkKeys(written: Written, known: readonly string[], place: Place): void {
  const unknown = Object.keys(written).filter((key) => !known.includes(key));
  const first = unknown[0];
  if (first === undefined) return;
  const keys = unknown.map((key) => describeValue(key)).join(", ");
  fail(
    { ...place, path: [...place.path, first] },
    `unknown ${unknown.length === 1 ? "key" : "keys"} ${keys} (expected ${known.join(", ")})`,
  );
}

function fail(place: Place, message: string): never {
  throw new ProblemFound({ ...place, message });
}

function byName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
