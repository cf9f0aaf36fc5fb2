import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { AdminServiceServer } from "../gen/vmtree/v1/admin.ts";
import { toServiceError } from "../link/status.ts";
import { ADMIN_METHODS, createAdminHandlers } from "./admin-handlers.ts";
import { assertCallerActor, type AdminOperations } from "./admin-operations.ts";
import type { Logger } from "../util/log.ts";

/** The metadata key naming who acts, recorded in the audit log. */
export const ACTOR_METADATA_KEY = "vmtree-actor";

/**
 * The admin API of a running node. It is served only on the unix socket inside the
 * data directory, so whoever can reach it already owns the node's files; the actor a
 * call names is recorded as given ("user:unknown" when it names none).
 */
export function createAdminService(operations: AdminOperations, log: Logger): AdminServiceServer {
  const service: UntypedServiceImplementation = {};
  for (const method of ADMIN_METHODS) {
    service[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const claimed = call.metadata.get(ACTOR_METADATA_KEY)[0];
      const actor = typeof claimed === "string" ? claimed : "user:unknown";
      const handler = createAdminHandlers(operations, actor)[method] as (request: unknown) => Promise<unknown>;
      log.debug("admin call", { method, actor });
      // A caller may not pass itself off as the node or as another site in the audit log.
      Promise.resolve().then(() => assertCallerActor(actor)).then(() => handler(call.request)).then(
        (response) => callback(null, response),
        (reason: unknown) => callback(toServiceError(reason)),
      );
    };
  }
  return service as AdminServiceServer;
}
