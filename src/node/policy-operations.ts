import { VmtreeError } from "../errors.ts";
import type {
  ApplyPolicyResponse,
  AuthorizeRequest,
  AuthorizeResponse,
  GetPolicyStatusResponse,
  NodePolicyStatus,
  PolicyState,
  ShowPolicyResponse,
} from "../gen/vmtree/v1/admin.ts";
import { PolicySet, type PolicyApplied, type PolicyDocument, type PolicyVersion } from "../gen/vmtree/v1/policy.ts";
import { MAX_LINK_MESSAGE_BYTES } from "../link/grpc-options.ts";
import { assertSiteId, isInSubtree } from "../pki/site-id.ts";
import { MAX_POLICY_BYTES, parsePolicyDocument } from "../policy/policy-document.ts";
import { diffPolicies } from "../policy/policy-diff.ts";
import type { VmtreeNode } from "./node.ts";

const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
/** A set travels down alone in one link message; room is left for the message's framing. */
export const MAX_POLICY_SET_BYTES = MAX_LINK_MESSAGE_BYTES - 64 * 1024;
const CAMERA_ID_MAX = 128;
// C0 and C1 controls, DEL, and the bidirectional overrides.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * The policy work behind the admin API, without its audit records (AdminOperations
 * writes those, for every call in one place).
 */
export class PolicyOperations {
  readonly #node: VmtreeNode;

  constructor(node: VmtreeNode) {
    this.#node = node;
  }

  /** Makes a policy file this node's set for its subtree; a file equal to the set in force changes nothing. */
  async apply(actor: string, fileName: string, content: Uint8Array): Promise<ApplyPolicyResponse> {
    if (content.byteLength > MAX_POLICY_BYTES) throw new VmtreeError("invalid_input", `${fileName}: the file is larger than ${MAX_POLICY_BYTES} bytes`);
    const policies = this.#node.policies;
    const previous = await policies.own();
    const parsed = parsePolicyDocument(fileName, content, { author: this.#node.config.site, nowMs: Date.now(), ...(previous ? { previous: previous.document } : {}) });
    if (!parsed.ok) throw parsed.error;
    const document = parsed.value;
    checkWireSize(fileName, document);
    const result = await policies.applyOwn(document, actor, (held) => diffPolicies(held.document, document).length === 0);
    return {
      set: result.set,
      changes: result.changed ? diffPolicies(result.previous?.document, document) : [],
      previous_version: result.previous?.version ?? 0,
    };
  }

  /** The sets in force here, ancestors first, and how fresh they are. */
  async show(): Promise<ShowPolicyResponse> {
    const site = this.#node.config.site;
    const sets = (await this.#node.policies.sets()).map((held) => ({
      set: held.set,
      source: held.set.author === site ? "local" : "inherited",
      received_ms: held.receivedMs,
    }));
    return { sets, state: await this.state() };
  }

  /** How old the policies held here are, and whether that is past the strictest maximum. */
  async state(nowMs = Date.now()): Promise<PolicyState> {
    const node = this.#node;
    const sets = await node.policies.sets();
    const limits = sets.map((held) => held.set.document?.max_policy_age_ms ?? 0).filter((ms) => ms > 0);
    const maxAgeMs = limits.length > 0 ? Math.min(...limits) : 0;
    // While the link is up and caught up, the age is the parent's; otherwise it runs from
    // the last moment the policies were known current.
    const linkAgeMs = node.isRoot ? 0 : node.uplinkState()?.policyAgeMs;
    const syncedMs = linkAgeMs === undefined ? await node.policies.syncedMs() : linkAgeMs < 0 ? 0 : nowMs - linkAgeMs;
    // -1: this node never held its parent's sets, so their age is unknown.
    const ageMs = syncedMs > 0 ? Math.max(0, nowMs - syncedMs) : -1;
    return {
      versions: sets.map(({ set }) => ({ author: set.author, version: set.version })),
      synced_ms: syncedMs,
      age_ms: ageMs,
      max_age_ms: maxAgeMs,
      stale: maxAgeMs > 0 && (ageMs < 0 || ageMs > maxAgeMs),
      damaged: [...(await node.policies.damaged())].map(([author, problem]) => `${author}: ${problem}`),
    };
  }

  /** What every node of the subtree applied, against the latest versions held here. */
  async status(): Promise<GetPolicyStatusResponse> {
    const node = this.#node;
    const site = node.config.site;
    const current = await node.policies.versions();
    const reports = new Map((await node.policies.applied()).map((report) => [report.site, report]));
    const known = new Set<string>([site, ...reports.keys()]);
    for (const child of await node.invitations.children()) known.add(child.site);
    for (const head of await node.audit.heads()) if (isInSubtree(head.origin, site)) known.add(head.origin);
    const others = [...known].filter((s) => s !== site && isInSubtree(s, site)).sort();
    const nodes = [site, ...others].map((s) => nodeStatus(s, reports.get(s), current));
    // A damaged set is held but not enforced: this node is as good as behind on it.
    if ((await node.policies.damaged()).size > 0) nodes[0]!.behind = true;
    return { current, nodes };
  }

  /** Decides a request from the sets held here; the caller audits the decision. */
  async authorize(request: AuthorizeRequest): Promise<AuthorizeResponse> {
    const node = this.#node;
    const own = node.config.site;
    checkAuthorizeRequest(request);
    const site = request.site || own;
    if (!isInSubtree(site, own)) throw new VmtreeError("invalid_argument", `site ${site} is neither ${own} nor in its subtree; ask a node above it`);
    const atMs = request.at_ms || Date.now();
    const state = await this.state();
    const answer = (decision: Omit<AuthorizeResponse, "policy_age_ms">): AuthorizeResponse => ({ ...decision, policy_age_ms: state.age_ms });
    if (state.stale) {
      const age = state.age_ms < 0 ? "were never received from the parent" : `are ${formatDuration(state.age_ms)} old`;
      return answer({ decision: "deny", binding: "", origin: "", version: 0, reason: `the policies held here ${age}, past max_policy_age ${formatDuration(state.max_age_ms)}` });
    }
    const damaged = [...(await node.policies.damaged())];
    if (damaged.length > 0) {
      const [author, problem] = damaged[0]!;
      return answer({ decision: "deny", binding: "", origin: "", version: 0, reason: `the policy set of ${author} held here is damaged (${problem}); every request is denied until it is received or applied again` });
    }
    if (state.versions.length === 0) {
      const why = node.isRoot ? "this root has applied no policy set" : state.age_ms < 0 ? "none was ever received from the parent, and none applied here" : "none is held here";
      return answer({ decision: "deny", binding: "", origin: "", version: 0, reason: `no policy set: ${why}; every request is denied` });
    }
    const camera = await node.replica.camera(site, request.camera);
    const engine = await node.policies.engine();
    return answer(engine.decide({ user: request.user, action: request.action, site, camera: request.camera, cameraType: camera?.camera_type, atMs }));
  }
}

/**
 * Refuses a document whose set would not fit in one link message: a file within its own
 * size limit can still expand past it (YAML aliases, many short bindings), and a set the
 * children cannot receive would stop at this node.
 */
function checkWireSize(fileName: string, document: PolicyDocument): void {
  // The signature and the signer's chain add a few KiB, within the room left.
  const bytes = PolicySet.encode({ author: "", version: 0, created_ms: 0, created_by: "", document, sha256: "", signature: Buffer.alloc(0), signer_chain_pem: "" }).finish().length;
  if (bytes > MAX_POLICY_SET_BYTES) {
    throw new VmtreeError("invalid_input", `${fileName}: the policy set would take ${bytes} bytes on the link, more than the ${MAX_POLICY_SET_BYTES} one link message carries; list fewer bindings or cameras (a YAML alias counts once for each use)`);
  }
}

/** Checks the form of a decision request; throws `invalid_argument` naming the bad value. */
export function checkAuthorizeRequest(request: AuthorizeRequest): void {
  if (!USER.test(request.user)) throw new VmtreeError("invalid_argument", `expected a user name like ivanov, got ${JSON.stringify(request.user.slice(0, 80))}`);
  if (request.camera === "" || request.camera.length > CAMERA_ID_MAX || CONTROL.test(request.camera)) {
    throw new VmtreeError("invalid_argument", `expected a camera id of 1 to ${CAMERA_ID_MAX} printable characters, got ${JSON.stringify(request.camera.slice(0, 80))}`);
  }
  if (request.site) assertSiteId(request.site);
  if (!Number.isSafeInteger(request.at_ms) || request.at_ms < 0 || request.at_ms > 8.64e15) {
    throw new VmtreeError("invalid_argument", `at_ms ${request.at_ms} is not a time`);
  }
}

function nodeStatus(site: string, report: PolicyApplied | undefined, current: readonly PolicyVersion[]): NodePolicyStatus {
  const versions = report?.versions ?? [];
  const applied = new Map(versions.map((v) => [v.author, v.version]));
  // A node applies only the sets of its own ancestors; the others do not concern it. A
  // version above the one held here is flagged too: the author's store went back in time,
  // or the set was forged on the way.
  const behind = current.some((c) => isInSubtree(site, c.author) && applied.get(c.author) !== c.version);
  return { site, versions, applied_ms: report?.applied_ms ?? 0, behind };
}

/** A duration for messages: its three largest non-zero units, like 3d 4h 5m or 12m 5s. */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]];
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) parts.push(`${count}${unit}`);
  }
  return parts.length > 0 ? parts.slice(0, 3).join(" ") : `${ms}ms`;
}
