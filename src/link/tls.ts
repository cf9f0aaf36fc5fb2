import { checkServerIdentity as tlsCheckServerIdentity, type PeerCertificate } from "node:tls";
import { credentials, experimental, type ChannelCredentials, type ServerCredentials } from "@grpc/grpc-js";
import type { DataDir } from "../node/data-dir.ts";
import { siteDnsName } from "../pki/site-id.ts";
import { NodeCertificateProvider } from "./certificate-provider.ts";

/**
 * Server credentials for a node's listening port. A client certificate is requested
 * and verified against the tree's root CA, but not required at the TLS level: the
 * enrolment service must be reachable by a child that has no certificate yet. Every
 * other method refuses a call whose certificate did not verify (see `peer-identity.ts`).
 * The certificates come from `provider`, so a renewed certificate applies without a restart.
 */
export function serverCredentials(dir: DataDir, provider = new NodeCertificateProvider(dir)): ServerCredentials {
  return experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/**
 * Client credentials for dialling `parentSite`: our node certificate, the tree's root
 * CA as the only trust anchor, and a server identity check against the parent's site
 * name rather than the dialled address (parents are reached by IP or through proxies).
 */
export function clientCredentials(
  pem: { rootCa: string; nodeCertChain: string; nodeKey: string } | { rootCa: string },
  parentSite: string,
): ChannelCredentials {
  const expected = siteDnsName(parentSite);
  const checkServerIdentity = (_host: string, cert: PeerCertificate) => tlsCheckServerIdentity(expected, cert);
  const identity = "nodeKey" in pem ? [Buffer.from(pem.nodeKey), Buffer.from(pem.nodeCertChain)] as const : [null, null] as const;
  return credentials.createSsl(Buffer.from(pem.rootCa), identity[0], identity[1], { checkServerIdentity });
}

/**
 * Channel options for dialling `site`: TLS SNI and the HTTP/2 authority carry the
 * site's DNS name instead of the dialled IP address (SNI may not be an IP address).
 */
export function channelOptionsFor(site: string): Record<string, string> {
  const name = siteDnsName(site);
  return { "grpc.ssl_target_name_override": name, "grpc.default_authority": name };
}

/**
 * Credentials that accept any server certificate. Used only to fetch the trust bundle
 * during `join`, whose root is then checked against the token's pinned fingerprint
 * before anything secret is sent.
 */
export function unverifiedCredentials(): ChannelCredentials {
  return credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
}
