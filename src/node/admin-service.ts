import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { AdminServiceServer } from "../gen/vmtree/v1/admin.ts";
import { toServiceError } from "../link/status.ts";
import type { VmtreeNode } from "./node.ts";

/** Turns an async handler into a grpc-js unary handler, mapping failures in one place. */
function unary<Req, Res>(handler: (request: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    handler(call.request).then(
      (response) => callback(null, response),
      (reason: unknown) => callback(toServiceError(reason)),
    );
  };
}

/**
 * The admin API of a running node. It is served only on the unix socket inside the
 * data directory, so whoever can reach it already owns the node's files.
 */
export function createAdminService(node: VmtreeNode): AdminServiceServer {
  return {
    getStatus: unary(() => node.status()),
    createInvite: unary(async (request) => {
      const { token, expiresMs } = await node.createInvite(request.site, request.ttl_seconds ? request.ttl_seconds * 1000 : undefined);
      return { token, expires_ms: expiresMs };
    }),
    importCameras: unary((request) => node.importCameras(request.file_name, request.content)),
    listCameras: unary(async (request) => ({ cameras: await node.listCameras(request.site || undefined) })),
  };
}
