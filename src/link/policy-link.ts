import type { ClientDuplexStream, ServerDuplexStream } from "@grpc/grpc-js";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import type { ParentServiceClient, SyncPoliciesRequest, SyncPoliciesResponse } from "../gen/vmtree/v1/link.ts";
import type { PolicyApplied, PolicyVersion } from "../gen/vmtree/v1/policy.ts";
import type { Revocations } from "../pki/revocations.ts";
import { assertSiteId, checkSiteId, isInSubtree } from "../pki/site-id.ts";
import { MAX_POLICY_VERSION } from "../policy/policy-set.ts";
import type { PolicyStore } from "../policy/policy-store.ts";
import { waitForDrain } from "../util/drain.ts";
import type { Logger } from "../util/log.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { eachMessage } from "./each-message.ts";
import { fromServiceError } from "./status.ts";

/** A revocation's reason, as an administrator types it. */
export const MAX_REASON_CHARS = 256;
/** A tree is at most 8 levels deep, so a child holds at most that many sets. */
const MAX_HELD = 8;
/** Applied reports in one message; a whole subtree's reports are sent in slices of this many. */
const MAX_APPLIED_PER_MESSAGE = 1_000;
/** How often a node in sync records that it still is, so that a crash loses little of its policy age. */
const SYNCED_MARK_INTERVAL_MS = 30_000;
/** How often a parent tells its child how old its own policies are. */
export const POLICY_AGE_INTERVAL_MS = 5_000;

/**
 * The parent's side of a child's policy stream. The child's first message says which
 * versions it holds; the answer carries every newer set held here, marked caught up.
 * After that each new version is pushed as it is stored here (applied on this node, or
 * received from its own parent), and the child's reports of what its subtree applied
 * are recorded. Resolves when the child ends the stream.
 */
/** What the parent's side of the policy stream reads from its node. */
export interface PolicySource {
  policies: PolicyStore;
  revocations: Revocations;
  /** How old this node's own policies are (see PolicyState.age_ms). */
  ownAgeMs: () => Promise<number>;
}

export async function servePolicies(
  call: ServerDuplexStream<SyncPoliciesRequest, SyncPoliciesResponse>,
  childSite: string,
  { policies, revocations, ownAgeMs }: PolicySource,
): Promise<void> {
  const sent = new Map<string, number>();
  const sentRevocations = new Map<string, number>();
  const writes = new SerialQueue();
  let started = false;
  // One set per message: a set may come near the message size limit on its own. Revocations
  // of the child's subtree (not of the child: it is refused instead) go in the first one.
  const push = (caughtUp: boolean, heartbeat = false) =>
    writes.run(async () => {
      const sets = (await policies.sets()).map((held) => held.set).filter((set) => set.version > (sent.get(set.author) ?? 0));
      const revoked = (await revocations.list()).filter(
        (r) => r.site !== childSite && isInSubtree(r.site, childSite) && (sentRevocations.get(r.site) ?? -1) < r.revoked_ms,
      );
      const age = await ownAgeMs();
      const messages: SyncPoliciesResponse[] = sets.map((set) => ({ sets: [set], caught_up: false, sender_age_ms: age, revocations: [] }));
      if (caughtUp || messages.length === 0) {
        if (caughtUp || heartbeat || revoked.length > 0) messages.push({ sets: [], caught_up: caughtUp, sender_age_ms: age, revocations: [] });
      }
      if (messages[0]) messages[0].revocations = revoked;
      for (const message of messages) {
        for (const set of message.sets) sent.set(set.author, set.version);
        for (const r of message.revocations) sentRevocations.set(r.site, r.revoked_ms);
        if (!call.write(message)) await waitForDrain(call);
      }
    });
  // A failed push means the stream is gone; the read loop below ends with it.
  const onSets = () => void (started && push(false).catch(() => undefined));
  policies.on("sets", onSets);
  revocations.on("change", onSets);
  const ages = setInterval(() => void (started && push(false, true).catch(() => undefined)), POLICY_AGE_INTERVAL_MS);
  try {
    await eachMessage<SyncPoliciesRequest>(call, async (message) => {
      checkMessage(message, started);
      if (!started) {
        for (const held of message.held) sent.set(held.author, held.version);
        started = true;
        await push(true);
      }
      if (message.applied.length > 0) await policies.recordApplied(childSite, message.applied);
    });
    call.end();
  } finally {
    clearInterval(ages);
    policies.off("sets", onSets);
    revocations.off("change", onSets);
  }
}

function checkMessage(message: SyncPoliciesRequest, started: boolean): void {
  if (message.held.length > (started ? 0 : MAX_HELD)) {
    throw new VmtreeError("invalid_argument", started ? "held versions are sent in the first message only" : `more than ${MAX_HELD} held policy versions`);
  }
  if (message.applied.length > MAX_APPLIED_PER_MESSAGE) throw new VmtreeError("invalid_argument", `more than ${MAX_APPLIED_PER_MESSAGE} applied reports in one message`);
  for (const held of message.held) checkVersion(held);
  for (const report of message.applied) {
    assertSiteId(report.site);
    if (report.versions.length > MAX_HELD + 1) throw new VmtreeError("invalid_argument", `site ${report.site} reports more than ${MAX_HELD + 1} policy versions`);
    for (const version of report.versions) checkVersion(version);
    if (!Number.isSafeInteger(report.applied_ms) || report.applied_ms < 0) {
      throw new VmtreeError("invalid_argument", `applied_ms ${report.applied_ms} of ${report.site} is not a time`);
    }
  }
}

function checkVersion(version: PolicyVersion): void {
  assertSiteId(version.author);
  if (!Number.isSafeInteger(version.version) || version.version < 1 || version.version > MAX_POLICY_VERSION) {
    throw new VmtreeError("invalid_argument", `version ${version.version} of ${version.author}'s policy set is not a version`);
  }
}

/** Options of {@link followPolicies}. */
export interface FollowPoliciesOptions {
  site: string;
  parentSite: string;
  policies: PolicyStore;
  revocations: Revocations;
  audit: AuditLog;
  log: Logger;
  signal: AbortSignal;
}

/** The child's side of the policy stream, once opened. */
export interface PolicyFollower {
  /** Resolves once the parent's newer sets are stored here; rejects if the stream fails first. */
  caughtUp: Promise<void>;
  /**
   * How old the policies held here are while the node holds its parent's latest sets: its
   * parent's age as last reported, grown since then (0 when the parent is in sync itself, -1
   * when the parent never received any); undefined while not caught up.
   */
  ageMs(): number | undefined;
  /** Rejects when the stream fails; resolves when `signal` ends it. */
  done: Promise<void>;
}

/**
 * Follows the parent's policy sets: says which versions are held, stores what the parent
 * sends (ancestors' sets, which this node enforces and passes on to its own children),
 * and reports up what this node and its subtree applied, as it changes.
 */
export function followPolicies(client: ParentServiceClient, options: FollowPoliciesOptions): PolicyFollower {
  const { site, parentSite, policies, revocations, audit, log, signal } = options;
  const call: ClientDuplexStream<SyncPoliciesRequest, SyncPoliciesResponse> = client.syncPolicies();
  const writes = new SerialQueue();
  const receipts = new SerialQueue();
  let inSync = false;
  let upstream = { ageMs: 0, atMs: 0 };
  const ageMs = (now = Date.now()): number | undefined => {
    if (!inSync) return undefined;
    return upstream.ageMs <= 0 ? upstream.ageMs : upstream.ageMs + (now - upstream.atMs);
  };
  // The moment this node's policies were last known current, for when the link is gone.
  const markSynced = () => {
    const age = ageMs();
    return age === undefined || age < 0 ? Promise.resolve() : policies.markSynced(Date.now() - age);
  };
  let markTimer: NodeJS.Timeout | undefined;
  let resolveCaughtUp!: () => void;
  let fail!: (error: VmtreeError) => void;
  const caughtUp = new Promise<void>((resolve) => (resolveCaughtUp = resolve));
  const failed = new Promise<never>((_, reject) => (fail = reject));
  // Whoever awaits only `done` must not see an unhandled rejection of the other.
  failed.catch(() => undefined);

  const send = (message: SyncPoliciesRequest) =>
    writes.run(async () => {
      if (!call.write(message)) await waitForDrain(call);
    });
  const report = (changed: PolicyApplied[]) => {
    for (let i = 0; i < changed.length; i += MAX_APPLIED_PER_MESSAGE) {
      void send({ held: [], applied: changed.slice(i, i + MAX_APPLIED_PER_MESSAGE) }).catch(() => undefined);
    }
  };
  // Registered before the table is read, so that no report falls between the two.
  policies.on("applied", report);

  const receive = (message: SyncPoliciesResponse) =>
    receipts.run(async () => {
      upstream = { ageMs: message.sender_age_ms, atMs: Date.now() };
      // Only revocations below this node concern it; anything else is refused whole.
      for (const r of message.revocations) {
        const bad = !checkSiteId(r.site).ok || r.site === site || !isInSubtree(r.site, site) || !checkSiteId(r.revoked_by).ok || !isInSubtree(r.site, r.revoked_by);
        if (bad || r.reason.length > MAX_REASON_CHARS || !Number.isSafeInteger(r.revoked_ms) || r.revoked_ms <= 0) {
          throw new VmtreeError("invalid_argument", `the parent sent a revocation of ${JSON.stringify(r.site.slice(0, 80))} by ${JSON.stringify(r.revoked_by.slice(0, 80))}, which does not concern ${site}'s subtree`);
        }
      }
      for (const r of await revocations.add(message.revocations)) {
        log.warn("site revoked", { site: r.site, by: r.revoked_by });
        await audit.append({ actor: `site:${parentSite}`, action: "enrolment.revocation", target: r.site, result: "ok", details: { revoked_by: r.revoked_by, revoked_ms: r.revoked_ms, reason: r.reason } });
      }
      const { stored, refused } = await policies.storeReceived(message.sets);
      for (const set of stored) {
        log.info("policy set received", { author: set.author, version: set.version });
        await audit.append({ actor: `site:${parentSite}`, action: "policy.receive", target: set.author, result: "ok", details: { version: set.version, sha256: set.sha256 } });
      }
      // A refused set leaves the older one in force; the parent sees this node behind.
      for (const { set, reason } of refused) {
        log.error("policy set refused", { author: set.author, version: set.version, reason });
        await audit.append({ actor: `site:${parentSite}`, action: "policy.receive", target: printableTarget(set.author), result: "refused", details: { version: set.version, reason } });
      }
      if (message.caught_up && !inSync) {
        inSync = true;
        await markSynced();
        markTimer = setInterval(() => void markSynced().catch(() => undefined), SYNCED_MARK_INTERVAL_MS);
        resolveCaughtUp();
      }
    }).catch((reason: unknown) => fail(VmtreeError.from(reason)));

  call.on("data", (message: SyncPoliciesResponse) => void receive(message));
  call.on("error", (error) => fail(fromServiceError(error)));
  call.on("end", () => fail(new VmtreeError("unavailable", "the parent ended the policy stream")));
  const aborted = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });

  void (async () => {
    const held = (await policies.intactVersions()).filter((v) => v.author !== site);
    await send({ held, applied: [] });
    report(await policies.applied());
  })().catch((reason: unknown) => fail(VmtreeError.from(reason)));

  const done = Promise.race([failed, aborted]).finally(async () => {
    policies.off("applied", report);
    clearInterval(markTimer);
    call.cancel();
    if (inSync) {
      await receipts.run(markSynced).catch(() => undefined);
      inSync = false;
    }
  });
  return {
    caughtUp: Promise.race([caughtUp, failed]),
    ageMs: () => ageMs(),
    done,
  };
}

/** An author id from the parent, safe to record even when it is not a site id. */
function printableTarget(author: string): string {
  return JSON.stringify(author.slice(0, 64)).slice(1, -1);
}
