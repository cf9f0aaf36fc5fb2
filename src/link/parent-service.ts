import type { ServerDuplexStream, ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import type {
  HelloRequest,
  HelloResponse,
  ParentServiceServer,
  SyncInventoryRequest,
  SyncInventoryResponse,
} from "../gen/vmtree/v1/link.ts";
import type { Invitations } from "../pki/invitations.ts";
import { parentOf } from "../pki/site-id.ts";
import type { InventoryReplica } from "../sync/inventory-replica.ts";
import { validateBatch } from "../sync/validate-change.ts";
import { waitForDrain } from "../util/drain.ts";
import type { Logger } from "../util/log.ts";
import type { ChildLinks } from "./child-links.ts";
import { peerIdentity } from "./peer-identity.ts";
import { toServiceError } from "./status.ts";

/** What the parent service needs from its node. */
export interface ParentServiceDeps {
  site: string;
  replica: InventoryReplica;
  invitations: Invitations;
  links: ChildLinks;
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
}

/**
 * The calls a parent serves to its children. Each one first establishes who is
 * calling from the verified certificate: a direct child of this node, enrolled here,
 * presenting the certificate it was last given.
 */
export function createParentService(deps: ParentServiceDeps): ParentService {
  const sessions = new Map<ServerDuplexStream<SyncInventoryRequest, SyncInventoryResponse>, Promise<void>>();
  let closing = false;

  const authorizeChild = async (call: { getAuthContext(): unknown }): Promise<{ site: string; epoch: number }> => {
    const peer = peerIdentity(call.getAuthContext() as Parameters<typeof peerIdentity>[0]);
    if (parentOf(peer.site) !== deps.site) {
      throw new VmtreeError("permission_denied", `site ${peer.site} is not a child of ${deps.site}`);
    }
    const child = await deps.invitations.child(peer.site);
    if (!child) throw new VmtreeError("permission_denied", `site ${peer.site} is not enrolled at ${deps.site}`);
    if (child.serial !== peer.serial) {
      throw new VmtreeError("permission_denied", `site ${peer.site} presented a certificate superseded by a later enrolment`);
    }
    return { site: peer.site, epoch: child.epoch };
  };

  const refuse = (reason: unknown, method: string, call: { getPeer(): string }) => {
    const error = VmtreeError.from(reason);
    deps.log.warn("call refused", { method, peer: call.getPeer(), reason: error.message });
    return toServiceError(error);
  };

  const implementation: ParentServiceServer = {
    hello(call: ServerUnaryCall<HelloRequest, HelloResponse>, callback: sendUnaryData<HelloResponse>): void {
      void (async () => {
        const child = await authorizeChild(call);
        if (await deps.replica.resetIfNewerEpoch(child.site, child.epoch)) {
          deps.log.info("child started a new epoch; its inventory is resynchronised", child);
        }
        const checkpoints = await deps.replica.checkpointsIn(child.site);
        callback(null, { checkpoints, parent_site: deps.site });
      })().catch((reason: unknown) => callback(refuse(reason, "Hello", call)));
    },

    syncInventory(call: ServerDuplexStream<SyncInventoryRequest, SyncInventoryResponse>): void {
      const session = (async () => {
        if (closing) throw new VmtreeError("unavailable", `${deps.site} is shutting down`);
        const child = await authorizeChild(call);
        const close = deps.links.open(child.site, 0);
        deps.log.info("child connected", { site: child.site });
        try {
          for await (const batch of call as AsyncIterable<SyncInventoryRequest>) {
            validateBatch(batch, child.site);
            for (const announced of batch.new_epochs) await deps.replica.resetIfNewerEpoch(announced.origin, announced.epoch);
            for (const change of batch.changes) {
              if (change.origin === child.site && change.epoch !== child.epoch) {
                throw new VmtreeError("failed_precondition", `site ${child.site} sent epoch ${change.epoch}, enrolled epoch is ${child.epoch}`);
              }
            }
            const { checkpoints, applied } = await deps.replica.applyChanges(batch.changes);
            deps.links.synced(child.site, applied, batch.pending);
            if (!call.write({ batch_id: batch.batch_id, checkpoints })) {
              await waitForDrain(call);
            }
          }
          call.end();
        } finally {
          await close();
          deps.log.info("child disconnected", { site: child.site });
        }
      })().catch((reason: unknown) => {
        if (!call.cancelled) call.emit("error", refuse(reason, "SyncInventory", call));
      });
      sessions.set(call, session);
      void session.finally(() => sessions.delete(call));
    },
  };

  return {
    implementation,
    async closeSessions() {
      closing = true;
      const shuttingDown = toServiceError(new VmtreeError("unavailable", `${deps.site} is shutting down`));
      for (const call of sessions.keys()) call.emit("error", shuttingDown);
      await Promise.allSettled(sessions.values());
    },
  };
}
