import type { ServerDuplexStream, ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import type { AuditLog } from "../audit/audit-log.ts";
import { validateAuditBatch } from "../audit/validate-entry.ts";
import { VmtreeError } from "../errors.ts";
import type {
  HelloRequest,
  HelloResponse,
  ParentServiceServer,
  SyncAuditRequest,
  SyncAuditResponse,
  SyncInventoryRequest,
  SyncInventoryResponse,
  Revocation,
  SyncPoliciesRequest,
  SyncPoliciesResponse,
  RenewCertificateRequest,
  RenewCertificateResponse,
  SyncCommandsRequest,
  SyncCommandsResponse,
} from "../gen/vmtree/v1/link.ts";
import type { UploadFragmentRequest, UploadFragmentResponse } from "../gen/vmtree/v1/fragment.ts";
import { serialOf } from "../pki/certificates.ts";
import type { Invitations } from "../pki/invitations.ts";
import type { Revocations } from "../pki/revocations.ts";
import type { PolicyStore } from "../policy/policy-store.ts";
import { isInSubtree, parentOf } from "../pki/site-id.ts";
import type { InventoryReplica } from "../sync/inventory-replica.ts";
import { validateBatch } from "../sync/validate-change.ts";
import { waitForDrain } from "../util/drain.ts";
import type { Logger } from "../util/log.ts";
import type { ChildLinks } from "./child-links.ts";
import { eachMessage } from "./each-message.ts";
import { peerIdentity } from "./peer-identity.ts";
import type { Fragments } from "../transfer/fragments.ts";
import type { LinkLimits } from "../transfer/link-limits.ts";
import { serveCommands } from "./command-link.ts";
import { servePolicies } from "./policy-link.ts";
import { toServiceError } from "./status.ts";

/** What the parent service needs from its node. */
export interface ParentServiceDeps {
  site: string;
  replica: InventoryReplica;
  audit: AuditLog;
  invitations: Invitations;
  policies: PolicyStore;
  revocations: Revocations;
  /** How old this node's own policies are, told to every child (see PolicyState.age_ms). */
  policyAgeMs: () => Promise<number>;
  links: ChildLinks;
  /** Signs a node certificate for `site` from `csrPem`; resolves with it and the chain above it. */
  issueNodeCertificate: (site: string, csrPem: string) => { nodeCert: string; chainPem: string };
  fragments: Fragments;
  limits: LinkLimits;
  log: Logger;
}

/** The parent service and the means to end its long-lived sync sessions. */
export interface ParentService {
  implementation: ParentServiceServer;
  /**
   * Ends every open sync session with UNAVAILABLE, refuses new ones, and resolves once
   * their handlers have finished, so that the store can be closed under none of them.
   */
  closeSessions(): Promise<void>;
  /**
   * Ends the sessions of the child whose subtree holds `origin`, so that it reconnects
   * and resends from this node's checkpoints (after a quarantine is lifted, say).
   */
  restartSessionsFor(origin: string): void;
}

interface Child {
  site: string;
  epoch: number;
  /** Serial of the certificate the child presented. */
  serial: string;
}

const MAX_CSR_LENGTH = 8192;

/** One open sync stream; `endedHere` once this node has ended it with a status of its own. */
interface Session {
  site?: string;
  done: Promise<void>;
  endedHere: boolean;
}

type AnyStream = ServerDuplexStream<unknown, unknown>;

/**
 * Calls one child may have open at once: its three sync streams and a hello, twice over
 * for a reconnect that overlaps the old session's end, and some room.
 */
const MAX_CALLS_PER_CHILD = 12;
/** Fragment uploads one child may have open at once: far more than it sends in parallel. */
const MAX_UPLOADS_PER_CHILD = 64;

/**
 * The calls a parent serves to its children. Each one first establishes who is
 * calling from the verified certificate: a direct child of this node, enrolled here,
 * presenting the certificate it was last given. Refusals are logged and audited.
 */
export function createParentService(deps: ParentServiceDeps): ParentService {
  const sessions = new Map<AnyStream, Session>();
  /** Calls in progress per child site, streams and unary calls alike. */
  const callsOpen = new Map<string, number>();
  let closing = false;

  /**
   * Counts a call of `site` until `done` settles; refuses it with RESOURCE_EXHAUSTED past the
   * limit, so that one child (or whoever holds its key) cannot tie up the node.
   */
  const limitCalls = async <T>(site: string, run: () => Promise<T>, kind: "call" | "upload" = "call"): Promise<T> => {
    const key = `${kind} ${site}`;
    const most = kind === "call" ? MAX_CALLS_PER_CHILD : MAX_UPLOADS_PER_CHILD;
    const open = callsOpen.get(key) ?? 0;
    if (open >= most) {
      throw new VmtreeError("resource_exhausted", `site ${site} has ${open} ${kind}s open here, the most one child may have; close some before opening more`);
    }
    callsOpen.set(key, open + 1);
    try {
      return await run();
    } finally {
      const left = (callsOpen.get(key) ?? 1) - 1;
      if (left > 0) callsOpen.set(key, left);
      else callsOpen.delete(key);
    }
  };

  const authorizeChild = async (call: { getAuthContext(): unknown }): Promise<Child> => {
    const peer = peerIdentity(call.getAuthContext() as Parameters<typeof peerIdentity>[0]);
    if (parentOf(peer.site) !== deps.site) {
      throw new VmtreeError("permission_denied", `site ${peer.site} is not a child of ${deps.site}`);
    }
    const child = await deps.invitations.child(peer.site);
    if (!child) throw new VmtreeError("permission_denied", `site ${peer.site} is not enrolled at ${deps.site}`);
    if (child.serial !== peer.serial && child.previousSerial !== peer.serial) {
      throw new VmtreeError("permission_denied", `site ${peer.site} presented a certificate superseded by a later enrolment or renewal`);
    }
    const revoked = await deps.revocations.revokedAt(peer.site);
    if (revoked && child.enrolledMs <= revoked.revoked_ms) throw revokedError(peer.site, revoked);
    // The child uses its renewed certificate: the one it renewed with is refused from now on.
    if (child.previousSerial !== undefined && child.serial === peer.serial) await deps.invitations.confirmSerial(peer.site, peer.serial);
    return { site: peer.site, epoch: child.epoch, serial: peer.serial };
  };

  const refuse = async (reason: unknown, method: string, call: { getPeer(): string; getAuthContext(): unknown }) => {
    const error = VmtreeError.from(reason);
    const peerSite = claimedSite(call);
    deps.log.warn("call refused", { method, peer: call.getPeer(), site: peerSite, reason: error.message });
    await deps.audit
      .append({ actor: peerSite ? `site:${peerSite}` : `peer:${call.getPeer()}`, action: "call.refused", target: method, result: "refused", details: { code: error.code, reason: error.rawMessage } })
      .catch(() => undefined);
    return toServiceError(error);
  };

  const linkEvent = async (site: string, action: "link.connect" | "link.disconnect") => {
    deps.log.info(action === "link.connect" ? "child connected" : "child disconnected", { site });
    await deps.audit.append({ actor: `site:${site}`, action, target: site, result: "ok" }).catch(() => undefined);
  };

  /**
   * Runs one child's long-lived stream: authorizes, marks the link open while `run` goes
   * on, and ends the call with the refusal's status when it throws. The session is tracked
   * so that shutdown and resyncs can end it.
   */
  const serveSession = <Req, Res>(method: string, call: ServerDuplexStream<Req, Res>, run: (child: Child) => Promise<void>, kind: "call" | "upload" = "call") => {
    const entry: Session = { done: Promise.resolve(), endedHere: false };
    const session = (async () => {
      if (closing) throw new VmtreeError("unavailable", `${deps.site} is shutting down`);
      const child = await authorizeChild(call);
      entry.site = child.site;
      // An upload is not the link: it neither marks the child connected nor counts among its sync calls.
      if (kind === "upload") return limitCalls(child.site, () => run(child), "upload");
      await limitCalls(child.site, async () => {
        const link = deps.links.open(child.site);
        if (link.connected) await linkEvent(child.site, "link.connect");
        try {
          await run(child);
        } finally {
          if (await link.close()) await linkEvent(child.site, "link.disconnect");
        }
      });
    })().catch(async (reason: unknown) => {
      // A session this node ended (shutdown, resync) already carries its status; it was not refused.
      if (entry.endedHere) return;
      if (!call.cancelled) call.emit("error", await refuse(reason, method, call));
    });
    entry.done = session;
    sessions.set(call as AnyStream, entry);
    void session.finally(() => sessions.delete(call as AnyStream));
  };

  /** A sync stream of batches: each acknowledgement is written only after `handle` stored its batch durably. */
  const serveStream = <Req, Res>(method: string, call: ServerDuplexStream<Req, Res>, handle: (child: Child, batch: Req) => Promise<Res>) => {
    serveSession(method, call, async (child) => {
      await eachMessage<Req>(call, async (batch) => {
        const response = await handle(child, batch);
        if (!call.write(response)) await waitForDrain(call);
      });
      call.end();
    });
  };

  const implementation: ParentServiceServer = {
    hello(call: ServerUnaryCall<HelloRequest, HelloResponse>, callback: sendUnaryData<HelloResponse>): void {
      void (async () => {
        const child = await authorizeChild(call);
        const hello = await limitCalls(child.site, async () => {
          if (await deps.replica.resetIfNewerEpoch(child.site, child.epoch)) {
            deps.log.info("child started a new epoch; its inventory is resynchronised", { ...child });
          }
          return { checkpoints: await deps.replica.checkpointsIn(child.site), audit_heads: await deps.audit.headsIn(child.site), parent_site: deps.site };
        });
        callback(null, hello);
      })().catch(async (reason: unknown) => callback(await refuse(reason, "Hello", call)));
    },

    syncInventory(call: ServerDuplexStream<SyncInventoryRequest, SyncInventoryResponse>): void {
      serveStream("SyncInventory", call, async (child, batch) => {
        validateBatch(batch, child.site);
        for (const change of batch.changes) {
          if (change.origin === child.site && change.epoch !== child.epoch) {
            throw new VmtreeError("failed_precondition", `site ${child.site} sent epoch ${change.epoch}, enrolled epoch is ${child.epoch}`);
          }
        }
        for (const announced of batch.new_epochs) {
          // The child's own epoch is the one it is enrolled with here; announcing another would
          // drop what this node holds of it.
          if (announced.origin === child.site && announced.epoch !== child.epoch) {
            throw new VmtreeError("failed_precondition", `site ${child.site} announced epoch ${announced.epoch}, enrolled epoch is ${child.epoch}`);
          }
        }
        for (const announced of batch.new_epochs) await deps.replica.resetIfNewerEpoch(announced.origin, announced.epoch);
        const { checkpoints, applied } = await deps.replica.applyChanges(batch.changes);
        deps.links.synced(child.site, { inventory: applied }, batch.pending);
        return { batch_id: batch.batch_id, checkpoints };
      });
    },

    syncAudit(call: ServerDuplexStream<SyncAuditRequest, SyncAuditResponse>): void {
      serveStream("SyncAudit", call, async (child, batch) => {
        validateAuditBatch(batch.entries, child.site);
        const result = await deps.audit.ingest(batch.entries, `site:${child.site}`, { origin: child.site, epoch: child.epoch });
        for (const q of result.newlyQuarantined) {
          deps.log.warn("audit stream quarantined", { origin: q.origin, seq: q.seq, reason: q.reason });
        }
        deps.links.synced(child.site, { audit: result.stored }, batch.pending);
        return { batch_id: batch.batch_id, heads: result.heads, quarantined_origins: result.quarantined.map((q) => q.origin) };
      });
    },

    renewCertificate(call: ServerUnaryCall<RenewCertificateRequest, RenewCertificateResponse>, callback: sendUnaryData<RenewCertificateResponse>): void {
      void (async () => {
        const child = await authorizeChild(call);
        const csr = call.request.node_csr_pem;
        if (csr.length > MAX_CSR_LENGTH) throw new VmtreeError("invalid_argument", `the node CSR is longer than ${MAX_CSR_LENGTH} characters`);
        // The site is the verified certificate's, never the message's.
        const issued = await deps.invitations.renew(child.site, child.serial, () => {
          const { nodeCert, chainPem } = deps.issueNodeCertificate(child.site, csr);
          return { nodeCert, chainPem, serial: serialOf(nodeCert) };
        });
        deps.log.info("node certificate renewed", { site: child.site, serial: issued.serial });
        await deps.audit.append({
          actor: `site:${child.site}`,
          action: "enrolment.renew",
          target: child.site,
          result: "ok",
          details: { epoch: child.epoch, serial: issued.serial, previous_serial: child.serial },
        });
        callback(null, { node_cert_chain_pem: issued.nodeCert + issued.chainPem });
      })().catch(async (reason: unknown) => callback(await refuse(reason, "RenewCertificate", call)));
    },

    syncPolicies(call: ServerDuplexStream<SyncPoliciesRequest, SyncPoliciesResponse>): void {
      serveSession("SyncPolicies", call, (child) => servePolicies(call, child.site, { policies: deps.policies, revocations: deps.revocations, ownAgeMs: deps.policyAgeMs }));
    },

    syncCommands(call: ServerDuplexStream<SyncCommandsRequest, SyncCommandsResponse>): void {
      serveSession("SyncCommands", call, (child) => serveCommands(call, child.site, { fragments: deps.fragments, limits: deps.limits }));
    },

    uploadFragment(call: ServerDuplexStream<UploadFragmentRequest, UploadFragmentResponse>): void {
      serveSession("UploadFragment", call, (child) => deps.fragments.receiver.serve(call, child.site), "upload");
    },
  };

  // A revocation ends the open sessions of the children it covers at once; their next
  // call is refused by authorizeChild.
  deps.revocations.on("change", (fresh) => {
    void (async () => {
      for (const [call, session] of sessions) {
        if (session.site === undefined) continue;
        const child = await deps.invitations.child(session.site);
        const revoked = fresh.find((r) => isInSubtree(session.site!, r.site) && (child?.enrolledMs ?? 0) <= r.revoked_ms);
        if (revoked) {
          deps.log.warn("revoked child disconnected", { site: session.site, revoked: revoked.site });
          endSession(call, session, toServiceError(revokedError(session.site, revoked)));
        }
      }
    })();
  });

  return {
    implementation,
    async closeSessions() {
      closing = true;
      const shuttingDown = toServiceError(new VmtreeError("unavailable", `${deps.site} is shutting down`));
      for (const [call, session] of sessions) endSession(call, session, shuttingDown);
      await Promise.allSettled([...sessions.values()].map((session) => session.done));
    },
    restartSessionsFor(origin) {
      const restart = toServiceError(new VmtreeError("unavailable", `${deps.site} asks for a resync of ${origin}`));
      for (const [call, session] of sessions) {
        if (session.site !== undefined && isInSubtree(origin, session.site)) endSession(call, session, restart);
      }
    },
  };
}

/** Ends a session with `status`: grpc-js sends an error emitted on a server stream as the call's status. */
function endSession(call: AnyStream, session: Session, status: ReturnType<typeof toServiceError>): void {
  session.endedHere = true;
  call.emit("error", status);
}

/** The site a refused caller's verified certificate names, if any, for the audit record. */
function claimedSite(call: { getAuthContext(): unknown }): string | undefined {
  try {
    return peerIdentity(call.getAuthContext() as Parameters<typeof peerIdentity>[0]).site;
  } catch {
    return undefined;
  }
}

function revokedError(site: string, revocation: Revocation): VmtreeError {
  const what = revocation.site === site ? site : `${revocation.site}, and with it ${site}`;
  return new VmtreeError("permission_denied", `${what} was revoked by ${revocation.revoked_by} at ${new Date(revocation.revoked_ms).toISOString()}; it can join again only with a new invitation`);
}
