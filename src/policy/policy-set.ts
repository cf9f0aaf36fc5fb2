import { createHash } from "node:crypto";
import { VmtreeError } from "../errors.ts";
import type { PolicyDocument, PolicySet } from "../gen/vmtree/v1/policy.ts";
import { describeValue } from "../inventory/input-problem.ts";
import { checkSiteId, isInSubtree } from "../pki/site-id.ts";
import { checkDocument } from "./policy-rules.ts";

/** The highest version a set may have: far more applies than a node makes in its life, and exact everywhere. */
export const MAX_POLICY_VERSION = 2 ** 31 - 1;

/**
 * Hex SHA-256 of the canonical JSON of a set's author, version and document, the value of
 * `PolicySet.sha256`. Canonical JSON: `JSON.stringify` without spaces of
 * `{"author","document","version"}`, object keys sorted by UTF-16 code units at every level,
 * list order kept, every proto field present (defaults included, nothing else), so
 *
 * `{"author":"kz","document":{"bindings":[{"action":"","camera_types":[],"cameras":[],"effect":"deny",`
 * `"id":"b1","role":"","scope":"kz","subject":"user:x","valid_from_implied":false,"valid_from_ms":0,"valid_until_ms":0,`
 * `"valid_until_implied":false}],"groups":[{"name":"g","users":["x"]}],"max_policy_age_ms":0,`
 * `"roles":[{"actions":["view_live"],"name":"r"}]},"version":1}`.
 *
 * Extra properties on the objects passed in are ignored, so the hash is the same in every
 * language that builds the same fields.
 */
export function policySetHash(author: string, version: number, document: PolicyDocument): string {
  const canonical = {
    author,
    document: {
      bindings: document.bindings.map((binding) => ({
        action: binding.action,
        camera_types: binding.camera_types,
        cameras: binding.cameras,
        effect: binding.effect,
        id: binding.id,
        role: binding.role,
        scope: binding.scope,
        subject: binding.subject,
        valid_from_implied: binding.valid_from_implied,
        valid_from_ms: binding.valid_from_ms,
        valid_until_implied: binding.valid_until_implied,
        valid_until_ms: binding.valid_until_ms,
      })),
      groups: document.groups.map((group) => ({ name: group.name, users: group.users })),
      max_policy_age_ms: document.max_policy_age_ms,
      roles: document.roles.map((role) => ({ actions: role.actions, name: role.name })),
    },
    version,
  };
  // The literals above are written with their keys sorted, which JSON.stringify keeps.
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

/**
 * Checks a set that `holder` received from its parent before it is stored or enforced:
 * the author is a valid site id strictly above `holder`, the version is at least 1, the
 * hash matches {@link policySetHash}, and the document keeps every rule of a policy set
 * (scopes inside the author's subtree, known actions, defined roles and groups, effects,
 * valid_until after valid_from). The 12-month term is not re-checked against this node's
 * clock: the author checked it when it applied the set, and clocks differ.
 * Throws `invalid_argument` naming the set and the first problem.
 */
export function validateReceivedSet(set: PolicySet, holder: string): void {
  const author = checkSiteId(set.author);
  if (!author.ok) throw new VmtreeError("invalid_argument", `policy set from ${describeValue(set.author)}: ${author.error.rawMessage}`);
  const name = `policy set of ${set.author} version ${set.version}`;
  const refuse = (message: string): never => {
    throw new VmtreeError("invalid_argument", `${name}: ${message}`);
  };
  if (set.author === holder || !isInSubtree(holder, set.author)) refuse(`${set.author} is not an ancestor of ${holder}, which received it`);
  if (!Number.isSafeInteger(set.version) || set.version < 1 || set.version > MAX_POLICY_VERSION) {
    refuse(`version ${describeValue(set.version)} is not a whole number from 1 to ${MAX_POLICY_VERSION}`);
  }
  const document = set.document ?? refuse("it has no document");
  const expected = policySetHash(set.author, set.version, document);
  if (set.sha256 !== expected) refuse(`sha256 ${describeValue(set.sha256)} does not match its content (${expected})`);
  const problem = checkDocument(document, set.author);
  if (problem === undefined) return;
  const where = [problem.item, problem.field === undefined ? undefined : `field ${problem.field}`].filter((part) => part !== undefined);
  refuse(where.length === 0 ? problem.message : `${where.join(", ")}: ${problem.message}`);
}
