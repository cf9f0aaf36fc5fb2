import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import type {
  EnrolmentServiceServer,
  GetTrustBundleRequest,
  GetTrustBundleResponse,
  JoinRequest,
  JoinResponse,
} from "../gen/vmtree/v1/enrolment.ts";
import { serialOf, signCsr, type Issuer } from "../pki/certificates.ts";
import type { Invitations } from "../pki/invitations.ts";
import type { Revocations } from "../pki/revocations.ts";
import { checkSiteId } from "../pki/site-id.ts";
import type { Logger } from "../util/log.ts";
import { toServiceError } from "./status.ts";

/** What the enrolment service needs from its node. */
export interface EnrolmentServiceDeps {
  site: string;
  rootCaPem: string;
  /** This node's CA (signs its children) and its chain up to the root. */
  issuer: Issuer;
  issuerChainPem: string;
  invitations: Invitations;
  revocations: Revocations;
  audit: AuditLog;
  log: Logger;
}

const MAX_CSR_LENGTH = 8192;

/** The service a child without a certificate calls to enrol with its join token. */
export function createEnrolmentService(deps: EnrolmentServiceDeps): EnrolmentServiceServer {
  return {
    getTrustBundle(
      _call: ServerUnaryCall<GetTrustBundleRequest, GetTrustBundleResponse>,
      callback: sendUnaryData<GetTrustBundleResponse>,
    ): void {
      callback(null, { root_ca_pem: deps.rootCaPem, parent_site: deps.site });
    },

    join(call: ServerUnaryCall<JoinRequest, JoinResponse>, callback: sendUnaryData<JoinResponse>): void {
      const request = call.request;
      void (async () => {
        const site = checkSiteId(request.site);
        if (!site.ok) throw site.error;
        if (request.node_csr_pem.length > MAX_CSR_LENGTH || request.ca_csr_pem.length > MAX_CSR_LENGTH) {
          throw new VmtreeError("invalid_argument", `a CSR is longer than ${MAX_CSR_LENGTH} characters`);
        }
        const revoked = await deps.revocations.revokedAt(request.site);
        const issued = await deps.invitations.redeem(
          { ownSite: deps.site, site: request.site, secret: request.secret, ...(revoked ? { revokedAtMs: revoked.revoked_ms } : {}) },
          () => {
            const nodeCert = signCsr(request.node_csr_pem, request.site, "node", deps.issuer);
            const caCert = signCsr(request.ca_csr_pem, request.site, "ca", deps.issuer);
            return { nodeCert, caCert, serial: serialOf(nodeCert) };
          },
        );
        deps.log.info("enrolment accepted", { site: request.site, epoch: issued.epoch, peer: call.getPeer() });
        await deps.audit.append({
          actor: `peer:${call.getPeer()}`,
          action: "enrolment.join",
          target: request.site,
          result: "ok",
          details: { epoch: issued.epoch, serial: issued.serial },
        });
        callback(null, {
          node_cert_chain_pem: issued.nodeCert + deps.issuerChainPem,
          ca_cert_chain_pem: issued.caCert + deps.issuerChainPem,
          root_ca_pem: deps.rootCaPem,
          parent_site: deps.site,
          epoch: issued.epoch,
        });
      })().catch(async (reason: unknown) => {
        const error = VmtreeError.from(reason);
        const site = request.site.slice(0, 300);
        deps.log.warn("enrolment refused", { site, peer: call.getPeer(), reason: error.message });
        await deps.audit
          .append({ actor: `peer:${call.getPeer()}`, action: "enrolment.join", target: site, result: "refused", details: { reason: error.rawMessage } })
          .catch(() => undefined);
        callback(toServiceError(error));
      });
    },
  };
}
