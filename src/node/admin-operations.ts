import type { ChainReport, Quarantine } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import type {
  AddFragmentRequest,
  AddFragmentResponse,
  FragmentRequestState,
  ListTransfersResponse,
  RequestFragmentsRequest,
  Transfer,
  ApplyPolicyResponse,
  AuthorizeRequest,
  AuthorizeResponse,
  GetPolicyStatusResponse,
  GetStatusResponse,
  LinkStatus,
  PolicyState,
  ShowPolicyResponse,
} from "../gen/vmtree/v1/admin.ts";
import type { AuditEntry } from "../gen/vmtree/v1/audit.ts";
import type { Fragment, FragmentRequest, LinkLimit } from "../gen/vmtree/v1/fragment.ts";
import { isDetailsObject, MAX_DETAILS_DEPTH } from "../audit/validate-entry.ts";
import { parseInventory } from "../inventory/parse-inventory.ts";
import { DEFAULT_INVITE_TTL_MS } from "../pki/invitations.ts";
import type { Revocation } from "../gen/vmtree/v1/link.ts";
import { MAX_REASON_CHARS } from "../link/policy-link.ts";
import { assertSiteId, isInSubtree, parentOf } from "../pki/site-id.ts";
import type { ImportCounts, SiteCamera } from "../sync/inventory-replica.ts";
import { lastUplinkHistory } from "../link/uplink.ts";
import { checkListenAddress } from "./address.ts";
import type { VmtreeNode } from "./node.ts";
import { PolicyOperations } from "./policy-operations.ts";

/** Largest inventory file accepted. */
export const MAX_IMPORT_BYTES = 64 * 1024 * 1024;
const DAY_MS = 86_400_000;
export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
const ACTOR = /^(node|[a-z]+:[^\s]{1,128})$/;

/** Filters of {@link AdminOperations.listAudit}. */
export interface AuditListQuery {
  site?: string;
  sinceMs?: number;
  untilMs?: number;
  actor?: string;
  action?: string;
  limit?: number;
}

/**
 * What an administrator (or the site's own video system) can do to a node, whether it
 * runs or not. Every operation is audited here, in one place: who, what, on what, and
 * how it ended.
 */
export class AdminOperations {
  readonly #node: VmtreeNode;
  readonly #policies: PolicyOperations;

  constructor(node: VmtreeNode) {
    this.#node = node;
    this.#policies = new PolicyOperations(node);
  }

  /** Makes a policy file this node's policy set for its subtree, as a new version. */
  applyPolicy(actor: string, fileName: string, content: Uint8Array): Promise<ApplyPolicyResponse> {
    return this.#audited(actor, "policy.apply", this.#node.config.site, () => this.#policies.apply(actor, fileName, content), (result) => ({
      file: fileName,
      version: result.set?.version ?? 0,
      previous_version: result.previous_version,
      changes: result.changes.length,
      sha256: result.set?.sha256 ?? "",
    }));
  }

  /** How fresh the policies held here are; not an admin call (not audited): the link tells children. */
  policyState(): Promise<PolicyState> {
    return this.#policies.state();
  }

  /** Revokes a site of this node's subtree, and with it the site's own subtree. */
  revoke(actor: string, site: string, reason: string): Promise<Revocation> {
    return this.#audited(actor, "enrolment.revoke", site, async () => {
      const own = this.#node.config.site;
      assertSiteId(site);
      if (site === own || !isInSubtree(site, own)) throw new VmtreeError("invalid_argument", `${site} is not in the subtree of ${own}; revoke it from one of its ancestors`);
      if (reason.length > MAX_REASON_CHARS || CONTROL.test(reason)) throw new VmtreeError("invalid_argument", `the reason must be at most ${MAX_REASON_CHARS} printable characters`);
      const revocation: Revocation = { site, revoked_ms: Date.now(), revoked_by: own, reason };
      await this.#node.revocations.add([revocation]);
      return revocation;
    }, (revocation) => ({ revoked_ms: revocation.revoked_ms, reason: revocation.reason }));
  }

  /** Registers a recording of this site; an incident recording goes up at once. */
  addFragment(actor: string, request: AddFragmentRequest): Promise<AddFragmentResponse> {
    return this.#audited(actor, "fragment.add", request.camera_id.slice(0, 64), async () => {
      const { fragment, alreadyPresent } = await this.#node.fragments.add({
        cameraId: request.camera_id, filePath: request.file_path, startMs: request.start_ms, endMs: request.end_ms, incident: request.incident,
      });
      return { fragment, already_present: alreadyPresent };
    }, (r) => ({ fragment: r.fragment?.id, size: r.fragment?.size, sha256: r.fragment?.sha256, incident: r.fragment?.incident, already_present: r.already_present }));
  }

  /** The fragments held here, of `site`'s subtree when given. */
  listFragments(actor: string, site: string | undefined): Promise<Fragment[]> {
    return this.#audited(actor, "fragment.list", site ?? this.#node.config.site, async () => {
      if (site !== undefined) assertSiteId(site);
      return (await this.#node.fragments.list(site)).map((held) => held.fragment);
    }, (fragments) => ({ fragments: fragments.length }));
  }

  /** Copies a fragment held here to a file. */
  exportFragment(actor: string, id: string, outPath: string): Promise<Fragment> {
    return this.#audited(actor, "fragment.export", id.slice(0, 140), () => this.#node.fragments.export(id, outPath), (fragment) => ({ out: outPath, size: fragment.size, sha256: fragment.sha256 }));
  }

  /** Records a reasoned request for a subtree site's recordings and routes it down. */
  requestFragments(actor: string, request: RequestFragmentsRequest): Promise<FragmentRequest> {
    return this.#audited(actor, "fragment.request", request.site.slice(0, 200), () => this.#node.fragments.request(request), (made) => ({
      request: made.id, camera: made.camera_id, from_ms: made.from_ms, to_ms: made.to_ms, reason: made.reason, requested_by: made.requested_by,
    }));
  }

  /** The fragment requests this node made or passed on. */
  listFragmentRequests(actor: string): Promise<FragmentRequestState[]> {
    return this.#audited(actor, "fragment.requests", this.#node.config.site, async () =>
      (await this.#node.fragments.requests.list()).map((r) => ({ request: r.request, state: r.state, outcome: r.outcome, delivered: r.delivered.length, failures: r.failures ?? [] })),
    (states) => ({ requests: states.length }));
  }

  /** Sets the fragment bandwidth cap of a direct child's link; the child applies it within a second. */
  setLinkLimit(actor: string, site: string, bitsPerSecond: number): Promise<LinkLimit> {
    return this.#audited(actor, "link.limit", site, async () => {
      assertSiteId(site);
      if (parentOf(site) !== this.#node.config.site || !(await this.#node.invitations.child(site))) {
        throw new VmtreeError("invalid_argument", `${site} is not an enrolled child of ${this.#node.config.site}; set the cap on its parent`);
      }
      if (!Number.isSafeInteger(bitsPerSecond) || bitsPerSecond < 0) throw new VmtreeError("invalid_argument", `bits per second must be a whole number, not ${bitsPerSecond}`);
      return this.#node.linkLimits.set(site, bitsPerSecond);
    }, (limit) => ({ bits_per_second: limit.bits_per_second }));
  }

  /** Transfers to the parent and from children. Not audited: it is polled by `transfers --watch`. */
  async listTransfers(): Promise<ListTransfersResponse> {
    const { up, down } = await this.#node.fragments.transfers();
    const parent = this.#node.config.parent?.site ?? "";
    const now = Date.now();
    const transfers: Transfer[] = [
      ...up.map((job) => ({
        fragment_id: job.fragmentId, peer: parent, direction: "up", priority: job.priority, state: job.state,
        bytes_done: job.committed, total: job.total, rate: job.rate,
        eta_ms: job.rate > 0 ? Math.round(((job.total - job.committed) / job.rate) * 1000) : 0,
        resent: job.resent, attempts: job.attempts, last_error: job.lastError,
      })),
      ...down.map((upload) => {
        const seconds = (now - upload.startedMs) / 1000;
        const rate = seconds > 0 ? (upload.committed - upload.startOffset) / seconds : 0;
        return {
          fragment_id: upload.fragmentId, peer: upload.from, direction: "down", priority: upload.priority, state: "receiving",
          bytes_done: upload.committed, total: upload.total, rate, eta_ms: rate > 0 ? Math.round(((upload.total - upload.committed) / rate) * 1000) : 0,
          resent: 0, attempts: 0, last_error: "",
        };
      }),
    ];
    const cap = await this.#node.linkCap.inForce();
    return { transfers, cap_bits_per_second: Number.isFinite(cap.bitsPerSecond) ? cap.bitsPerSecond : 0, cap_source: cap.source };
  }

  /** The policy sets in force here. */
  showPolicy(actor: string): Promise<ShowPolicyResponse> {
    return this.#audited(actor, "policy.show", this.#node.config.site, () => this.#policies.show());
  }

  /** The policy versions every node of the subtree applied. */
  policyStatus(actor: string): Promise<GetPolicyStatusResponse> {
    return this.#audited(actor, "policy.status", this.#node.config.site, () => this.#policies.status(), (status) => ({
      nodes: status.nodes.length,
      behind: status.nodes.filter((n) => n.behind).length,
    }));
  }

  /** Decides a request; the decision is recorded, a deny as refused. */
  authorize(actor: string, request: AuthorizeRequest): Promise<AuthorizeResponse> {
    // The request is checked inside; until then it is caller input, shown escaped and cut.
    const target = `${request.site || this.#node.config.site}/${request.camera}`.slice(0, 200).replace(new RegExp(CONTROL.source, "g"), "?");
    return this.#audited(actor, "policy.authorize", target, () => this.#policies.authorize(request), (decision) => ({
      user: request.user,
      action: request.action,
      decision: decision.decision,
      binding: decision.binding,
      origin: decision.origin,
      version: decision.version,
      ...(request.at_ms ? { at_ms: request.at_ms } : {}),
    }), (decision) => (decision.decision === "allow" ? "ok" : "refused"));
  }

  /** Imports an inventory file's content as this site's complete inventory. */
  importCameras(actor: string, fileName: string, content: Uint8Array): Promise<ImportCounts> {
    return this.#audited(actor, "inventory.import", fileName, async () => {
      if (content.byteLength > MAX_IMPORT_BYTES) {
        throw new VmtreeError("invalid_input", `${fileName}: the file is larger than ${MAX_IMPORT_BYTES} bytes`);
      }
      const parsed = parseInventory(fileName, content, { site: this.#node.config.site });
      if (!parsed.ok) throw parsed.error;
      const { site, epoch } = this.#node.config;
      return this.#node.replica.importOwn(site, epoch, parsed.value, { signal: this.#node.stopping });
    }, (counts) => ({ ...counts }));
  }

  /** Cameras of this node and its subtree, or of the subtree of `site`. */
  listCameras(actor: string, site?: string): Promise<SiteCamera[]> {
    return this.#audited(actor, "inventory.list", site ?? this.#node.config.site, () => {
      if (site !== undefined) assertSiteId(site);
      return this.#node.replica.list(site);
    }, (cameras) => ({ cameras: cameras.length }));
  }

  /** Creates a join token for a direct child; the token itself is never recorded. */
  createInvite(actor: string, site: string, ttlMs = DEFAULT_INVITE_TTL_MS): Promise<{ token: string; expiresMs: number; enrolledEpoch: number }> {
    return this.#audited(actor, "enrolment.invite", site, async () => {
      const node = this.#node;
      if (checkListenAddress(node.listen).port === 0) {
        throw new VmtreeError("failed_precondition", "this node listens on port 0 and has not picked its port yet; start `vmtree serve` first");
      }
      const invite = await node.invitations.create({
        ownSite: node.config.site,
        childSite: site,
        address: node.config.advertise ?? node.listen,
        caFingerprint: node.identity.rootCaFingerprint,
        ttlMs,
      });
      return { ...invite, enrolledEpoch: (await node.invitations.child(site))?.epoch ?? 0 };
    }, (invite) => ({ expires: new Date(invite.expiresMs).toISOString() }));
  }

  /** Verifies the audit chains held here. */
  verifyAudit(actor: string, site?: string): Promise<ChainReport[]> {
    return this.#audited(actor, "audit.verify", site ?? this.#node.config.site, () => {
      if (site !== undefined) assertSiteId(site);
      return this.#node.audit.verify(site);
    }, (reports) => ({ chains: reports.length, bad: reports.filter((r) => !r.ok).length }));
  }

  /** Audit entries matching `query`. */
  listAudit(actor: string, query: AuditListQuery): Promise<AuditEntry[]> {
    return this.#audited(actor, "audit.list", query.site ?? this.#node.config.site, () => {
      if (query.site !== undefined) assertSiteId(query.site);
      return this.#node.audit.list(query);
    }, (entries) => ({ entries: entries.length }));
  }

  /**
   * Records an action of the site's own video system; `actor` names its user. The actors
   * and actions vmtree records itself are refused, so that no caller can plant an alarm,
   * an epoch end or a link event in the log.
   */
  async recordAudit(event: { actor: string; action: string; target: string; result: string; details: string }): Promise<AuditEntry> {
    assertCallerActor(event.actor);
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/.test(event.action) || event.action.length > 64) {
      throw new VmtreeError("invalid_argument", `expected an action like vms.view_live, got ${JSON.stringify(event.action.slice(0, 80))}`);
    }
    if (RESERVED_ACTION_GROUPS.has(event.action.slice(0, event.action.indexOf(".")))) {
      throw new VmtreeError("invalid_argument", `action ${event.action} is one vmtree records itself; use a group of your own, like vms.${event.action.slice(event.action.indexOf(".") + 1)}`);
    }
    if (event.result !== "ok" && event.result !== "refused" && event.result !== "failed") {
      throw new VmtreeError("invalid_argument", `expected result ok, refused or failed, got ${JSON.stringify(event.result.slice(0, 80))}`);
    }
    if (event.target.length > 512) throw new VmtreeError("invalid_argument", "the target is longer than 512 characters");
    if (CONTROL.test(event.target)) throw new VmtreeError("invalid_argument", `the target holds control characters: ${JSON.stringify(event.target.slice(0, 80))}`);
    const details = event.details === "" ? "{}" : event.details;
    if (details.length > 16_384 || !isDetailsObject(details)) {
      throw new VmtreeError("invalid_argument", `details must be a JSON object of at most 16 KiB, nested at most ${MAX_DETAILS_DEPTH} deep`);
    }
    return this.#node.audit.append({ ...event, result: event.result, details: JSON.parse(details) as Record<string, unknown> });
  }

  /**
   * Lifts the quarantine of `origin`'s audit stream. The log records a resolution in the
   * same batch as the change; an attempt that changes nothing is recorded here.
   */
  async resolveAuditQuarantine(actor: string, origin: string): Promise<boolean> {
    checkActor(actor);
    const resolved = await this.#recordedUnlessDone(actor, "audit.resolve", origin, async () => {
      assertSiteId(origin);
      return this.#node.audit.resolve(origin, actor);
    }, (done) => done, { error: "not quarantined here" });
    // The child skipped past what was refused; a new session resends it from the held head.
    if (resolved) this.#node.restartChildSessionsFor(origin);
    return resolved;
  }

  /**
   * Deletes audit entries past retention (the configured one unless `retentionMs` is given).
   * The log records each deletion with it; a prune an administrator asked for that deletes
   * nothing is recorded here (the hourly sweep's empty runs are not).
   */
  pruneAudit(actor: string, retentionMs?: number): Promise<number> {
    checkActor(actor);
    const days = this.#node.config.auditRetentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS;
    const retention = retentionMs ?? days * DAY_MS;
    return this.#recordedUnlessDone(actor, "audit.prune", this.#node.config.site, () =>
      this.#node.audit.prune({ nowMs: Date.now(), retentionMs: retention, isRoot: this.#node.isRoot, actor }),
    (deleted) => deleted > 0 || actor === "node", { deleted: 0, retention_ms: retention });
  }

  /**
   * Runs an operation whose success the log records itself; records a failure, or an
   * outcome `recordedByLog` says the log did not record, with `details`.
   */
  async #recordedUnlessDone<T>(actor: string, action: string, target: string, run: () => Promise<T>, recordedByLog: (value: T) => boolean, details: Record<string, unknown>): Promise<T> {
    const audit = this.#node.audit;
    let value: T;
    try {
      value = await run();
    } catch (error) {
      const failure = VmtreeError.from(error);
      await audit.append({ actor, action, target, result: "failed", details: { error: scrubCredentials(failure.message) } });
      throw failure;
    }
    if (!recordedByLog(value)) await audit.append({ actor, action, target, result: value === false ? "failed" : "ok", details });
    return value;
  }

  /** The node's state for `vmtree status`. */
  status(actor: string): Promise<GetStatusResponse> {
    return this.#audited(actor, "node.status", this.#node.config.site, () => this.#status());
  }

  async #status(): Promise<GetStatusResponse> {
    const node = this.#node;
    const cameras = await node.replica.list();
    const enrolled = await node.invitations.children();
    // A stopped node's link times are on disk only; a serving node loaded them at start.
    if (!node.serving) await node.links.load(enrolled.map((child) => child.site));
    const links = new Map(node.links.list().map((link) => [link.site, link]));
    const children: LinkStatus[] = enrolled.map((child) => {
      const link = links.get(child.site);
      return {
        ...emptyLink(child.site),
        state: link?.state ?? "disconnected",
        since_ms: link?.sinceMs ?? 0,
        last_sync_ms: link?.lastSyncMs ?? 0,
        pending: link?.pending ?? 0,
        received: link?.received ?? 0,
        audit_received: link?.auditReceived ?? 0,
        epoch: child.epoch,
      };
    });
    const ownHead = (await node.audit.heads()).find((head) => head.origin === node.config.site);
    return {
      site: node.config.site,
      epoch: node.config.epoch,
      listen: node.listen,
      is_root: node.isRoot,
      parent: await this.#parentStatus(),
      children,
      own_cameras: cameras.filter((c) => c.site === node.config.site).length,
      subtree_cameras: cameras.length,
      started_ms: node.serving ? node.startedMs : 0,
      audit_quarantines: (await node.audit.quarantines()).map(toQuarantineStatus),
      audit_entries_own: ownHead?.seq ?? 0,
      policy: await this.#policies.state(),
    };
  }

  async #parentStatus(): Promise<LinkStatus | undefined> {
    const node = this.#node;
    const parent = node.config.parent;
    if (!parent) return undefined;
    const link = node.uplinkState();
    const history = link ? undefined : await lastUplinkHistory(node.store);
    return {
      ...emptyLink(parent.site),
      address: link?.address ?? parent.address,
      state: link?.state ?? "disconnected",
      since_ms: link?.sinceMs ?? history?.sinceMs ?? 0,
      last_sync_ms: link?.lastSyncMs ?? history?.lastSyncMs ?? 0,
      pending: await node.acks.pending(),
      sent: link?.sent ?? 0,
      last_error: link ? link.lastError : "the node is not running",
      epoch: node.config.epoch,
      audit_sent: link?.auditSent ?? 0,
      audit_pending: await this.#auditPending(),
      audit_quarantined_by_parent: link?.auditQuarantinedByParent ?? [],
    };
  }

  /** Audit entries held here after the heads the parent acknowledged. */
  async #auditPending(): Promise<number> {
    const audit = this.#node.audit;
    const anchors = await audit.anchors();
    let total = 0;
    for (const head of await audit.heads()) {
      const anchor = anchors.get(head.origin);
      total += await audit.countAfter(head.origin, anchor?.epoch ?? 0, anchor?.seq ?? 0);
    }
    return total;
  }

  /** Runs an operation and appends who did what to what, and how it ended. */
  async #audited<T>(
    actor: string,
    action: string,
    target: string,
    run: () => Promise<T>,
    details?: (value: T) => Record<string, unknown>,
    result: (value: T) => "ok" | "refused" = () => "ok",
  ): Promise<T> {
    checkActor(actor);
    const audit = this.#node.audit;
    try {
      const value = await run();
      await audit.append({ actor, action, target, result: result(value), ...(details ? { details: details(value) } : {}) });
      return value;
    } catch (error) {
      const failure = VmtreeError.from(error);
      // Error messages quote the input; a stream URL's password in it must not travel up the tree.
      await audit.append({ actor, action, target, result: failure.code === "permission_denied" ? "refused" : "failed", details: { error: scrubCredentials(failure.message) } });
      throw failure;
    }
  }
}

/** Actor kinds and action groups that only vmtree itself records. */
const RESERVED_ACTOR_KINDS = new Set(["site", "peer"]);
const RESERVED_ACTION_GROUPS = new Set(["audit", "call", "enrolment", "fragment", "inventory", "link", "node", "policy"]);

/** Removes the user and password of every URL in `text`, however the URL is cut. */
export function scrubCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s"'<>]*@/gi, "$1");
}

/**
 * Checks an actor named by a caller of the admin API (its identity, or the user it records
 * for): a user-like name without control characters, not one of the actors vmtree itself records.
 */
export function assertCallerActor(actor: string): void {
  checkActor(actor);
  if (actor === "node" || RESERVED_ACTOR_KINDS.has(actor.slice(0, actor.indexOf(":"))) || CONTROL.test(actor)) {
    throw new VmtreeError("invalid_argument", `actor ${JSON.stringify(actor.slice(0, 80))} is not one a caller may name; name a user like user:NAME`);
  }
}

// C0 and C1 controls, DEL, and the bidirectional overrides that make text read other than it is.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

function checkActor(actor: string): void {
  if (!ACTOR.test(actor)) throw new VmtreeError("invalid_argument", `expected an actor like user:NAME, got ${JSON.stringify(actor.slice(0, 80))}`);
}

function emptyLink(site: string): LinkStatus {
  return {
    site, address: "", state: "disconnected", since_ms: 0, last_sync_ms: 0, pending: 0, sent: 0, received: 0,
    last_error: "", epoch: 0, audit_sent: 0, audit_received: 0, audit_pending: 0, audit_quarantined_by_parent: [],
  };
}

function toQuarantineStatus(q: Quarantine) {
  return { origin: q.origin, epoch: q.epoch, seq: q.seq, reason: q.reason, at_ms: q.atMs };
}
