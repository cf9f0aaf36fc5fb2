import type { handleUnaryCall } from "@grpc/grpc-js";
import type { AdminServiceServer } from "../gen/vmtree/v1/admin.ts";
import type { AdminOperations } from "./admin-operations.ts";

type RequestOf<H> = H extends handleUnaryCall<infer Req, unknown> ? Req : never;
type ResponseOf<H> = H extends handleUnaryCall<never, infer Res> ? Res : never;

/** The admin API as plain async functions: the same shape locally, over the socket, and in the server. */
export type AdminHandlers = {
  [Method in keyof AdminServiceServer]: (request: RequestOf<AdminServiceServer[Method]>) => Promise<ResponseOf<AdminServiceServer[Method]>>;
};

/** The admin API's method names, for code that maps over all of them. */
export const ADMIN_METHODS = [
  "getStatus",
  "createInvite",
  "importCameras",
  "listCameras",
  "verifyAudit",
  "listAudit",
  "recordAudit",
  "resolveAuditQuarantine",
  "pruneAudit",
  "applyPolicy",
  "showPolicy",
  "getPolicyStatus",
  "authorize",
  "revoke",
  "addFragment",
  "listFragments",
  "exportFragment",
  "requestFragments",
  "listFragmentRequests",
  "setLinkLimit",
  "listTransfers",
] as const satisfies readonly (keyof AdminServiceServer)[];

/** Binds the admin API to `operations`, acting as `actor`. */
export function createAdminHandlers(operations: AdminOperations, actor: string): AdminHandlers {
  return {
    getStatus: () => operations.status(actor),
    createInvite: async (request) => {
      const invite = await operations.createInvite(actor, request.site, request.ttl_seconds ? request.ttl_seconds * 1000 : undefined);
      return { token: invite.token, expires_ms: invite.expiresMs, enrolled_epoch: invite.enrolledEpoch };
    },
    importCameras: (request) => operations.importCameras(actor, request.file_name, request.content),
    listCameras: async (request) => ({ cameras: await operations.listCameras(actor, request.site || undefined) }),
    verifyAudit: async (request) => ({
      chains: (await operations.verifyAudit(actor, request.site || undefined)).map((report) => ({
        origin: report.origin,
        epoch: report.epoch,
        entries: report.entries,
        first_seq: report.firstSeq,
        last_seq: report.lastSeq,
        head_hash: report.headHash,
        ok: report.ok,
        bad_seq: report.badSeq ?? 0,
        reason: report.reason ?? "",
        quarantined: report.quarantined ?? "",
      })),
    }),
    listAudit: async (request) => ({
      entries: await operations.listAudit(actor, {
        ...(request.site ? { site: request.site } : {}),
        ...(request.since_ms ? { sinceMs: request.since_ms } : {}),
        ...(request.until_ms ? { untilMs: request.until_ms } : {}),
        ...(request.actor ? { actor: request.actor } : {}),
        ...(request.action ? { action: request.action } : {}),
        ...(request.limit ? { limit: request.limit } : {}),
      }),
    }),
    recordAudit: async (request) => ({ entry: await operations.recordAudit(request) }),
    resolveAuditQuarantine: async (request) => ({ resolved: await operations.resolveAuditQuarantine(actor, request.origin) }),
    pruneAudit: async (request) => ({ deleted: await operations.pruneAudit(actor, request.retention_ms) }),
    applyPolicy: (request) => operations.applyPolicy(actor, request.file_name, request.content),
    showPolicy: () => operations.showPolicy(actor),
    getPolicyStatus: () => operations.policyStatus(actor),
    authorize: (request) => operations.authorize(actor, request),
    revoke: async (request) => ({ revocation: await operations.revoke(actor, request.site, request.reason) }),
    addFragment: (request) => operations.addFragment(actor, request),
    listFragments: async (request) => ({ fragments: await operations.listFragments(actor, request.site || undefined) }),
    exportFragment: async (request) => ({ fragment: await operations.exportFragment(actor, request.id, request.out_path) }),
    requestFragments: async (request) => ({ request: await operations.requestFragments(actor, request) }),
    listFragmentRequests: async () => ({ requests: await operations.listFragmentRequests(actor) }),
    setLinkLimit: async (request) => ({ limit: await operations.setLinkLimit(actor, request.site, request.bits_per_second) }),
    listTransfers: () => operations.listTransfers(),
  };
}
