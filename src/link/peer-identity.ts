import type { PeerCertificate } from "node:tls";
import { VmtreeError } from "../errors.ts";
import { normalizeSerial } from "../pki/certificates.ts";
import { siteFromDnsName } from "../pki/site-id.ts";

/** Who is calling, as proven by a client certificate that verified against the root CA. */
export interface PeerIdentity {
  site: string;
  serial: string;
  fingerprint: string;
}

/**
 * Reads the caller's site id from its verified certificate. grpc-js reports a peer
 * certificate only when the TLS handshake verified it, so an absent certificate means
 * none was sent or it did not chain to our root CA.
 * Throws `unauthenticated` when there is no verified certificate or it names no site.
 */
export function peerIdentity(auth: { sslPeerCertificate?: PeerCertificate } | null | undefined): PeerIdentity {
  const cert = auth?.sslPeerCertificate;
  if (!cert) {
    throw new VmtreeError(
      "unauthenticated",
      "a valid client certificate issued within this tree is required (none was sent, or it did not verify: not issued in this tree, or expired; an expired node certificate cannot be renewed, enrol the site again)",
    );
  }
  const names = (cert.subjectaltname ?? "").split(",").map((name) => name.trim());
  const sites = names.flatMap((name) => {
    const site = name.startsWith("DNS:") ? siteFromDnsName(name.slice(4)) : undefined;
    return site ? [site] : [];
  });
  const site = sites[0];
  if (sites.length !== 1 || site === undefined || cert.subject?.CN !== site) {
    throw new VmtreeError("unauthenticated", "the client certificate does not name exactly one site");
  }
  return { site, serial: normalizeSerial(cert.serialNumber), fingerprint: cert.fingerprint256 };
}
