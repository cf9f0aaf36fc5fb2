import { X509Certificate } from "node:crypto";
import { readFile, rename, rm } from "node:fs/promises";
import type { ChannelCredentials } from "@grpc/grpc-js";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { LINK_CLIENT_OPTIONS } from "../link/grpc-options.ts";
import { channelOptionsFor } from "../link/tls.ts";
import { unaryCall } from "../link/unary-call.ts";
import { createCsr, generateKeyPair, serialOf } from "../pki/certificates.ts";
import type { Logger } from "../util/log.ts";
import { writeAtomically, type DataDir } from "./data-dir.ts";
import { checkIdentity, leafOf, type NodeIdentity } from "./identity.ts";

const CALL_TIMEOUT_MS = 15_000;
/** The renewal timer wakes at least this often, so that a long sleep or a clock change is caught up. */
const MAX_WAIT_MS = 60 * 60 * 1000;

/** When a certificate is due for renewal: once two thirds of its lifetime (notBefore to notAfter) has passed. */
export function renewalDueMs(certPem: string): number {
  const cert = new X509Certificate(leafOf(certPem));
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return from + ((to - from) * 2) / 3;
}

/** How long to wait before retrying a failed renewal: a twentieth of the lifetime, between 1 s and 5 min. */
export function retryDelayMs(certPem: string): number {
  const cert = new X509Certificate(leafOf(certPem));
  const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
  return Math.min(Math.max(lifetime / 20, 1_000), 5 * 60 * 1000);
}

/**
 * The reason a node cannot use its expired node certificate, with what to do; undefined
 * while it is valid. A parent refuses an expired certificate at the TLS handshake, and it
 * can no longer be renewed over the link.
 */
export function expiredProblem(chainPem: string, site: string, parentSite: string, now = Date.now()): string | undefined {
  const validTo = Date.parse(new X509Certificate(leafOf(chainPem)).validTo);
  if (now < validTo) return undefined;
  return (
    `the node certificate of ${site} expired at ${new Date(validTo).toISOString()} (it was not renewed in time, the node was stopped or could not reach ${parentSite}); ` +
    `${parentSite} refuses an expired certificate and it can no longer be renewed: enrol ${site} again with a new invitation (vmtree invite --site ${site} on ${parentSite}, then vmtree join into an empty data directory)`
  );
}

const renewed = (file: string) => `${file}.renewed`;

/**
 * Completes a renewal interrupted by a crash, before the identity is read. A renewal writes
 * `node.key.renewed`, then `node.pem.renewed`, then renames the key and then the
 * certificate over the old ones: once the certificate's file is there the pair is complete
 * and the renames are finished; otherwise the old pair is intact and a lone key is dropped.
 */
export async function finishRenewal(dir: DataDir): Promise<void> {
  const exists = (file: string) => readFile(file).then(() => true, () => false);
  if (await exists(renewed(dir.nodeCertFile))) {
    if (await exists(renewed(dir.nodeKeyFile))) await rename(renewed(dir.nodeKeyFile), dir.nodeKeyFile);
    await rename(renewed(dir.nodeCertFile), dir.nodeCertFile);
  } else {
    await rm(renewed(dir.nodeKeyFile), { force: true });
  }
}

/** What {@link CertificateRenewal} needs from its node. */
export interface RenewalOptions {
  dir: DataDir;
  site: string;
  parentSite: string;
  address: string;
  /** The node's identity; its node certificate and key are replaced in place on renewal. */
  identity: NodeIdentity;
  /** Client credentials with the node's current certificate. */
  credentials: () => ChannelCredentials;
  /** Called once the new certificate and key are on disk and in `identity`. */
  onRenewed: () => Promise<void> | void;
  audit: AuditLog;
  log: Logger;
}

/**
 * Renews the node certificate over the parent link once two thirds of its lifetime has
 * passed (at once when the node starts past that point), and retries until it succeeds
 * or the certificate expires.
 */
export class CertificateRenewal {
  readonly #options: RenewalOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  #expiredLogged = false;

  constructor(options: RenewalOptions) {
    this.#options = options;
  }

  start(): void {
    this.#schedule(0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(minimumMs: number): void {
    if (this.#closed) return;
    const wait = Math.max(minimumMs, renewalDueMs(this.#options.identity.nodeCertChainPem) - Date.now());
    this.#timer = setTimeout(() => {
      this.#running = this.#tick();
    }, Math.min(wait, MAX_WAIT_MS));
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    const { identity, site, parentSite, log } = this.#options;
    const chain = identity.nodeCertChainPem;
    if (Date.now() < renewalDueMs(chain)) return this.#schedule(0);
    const expired = expiredProblem(chain, site, parentSite);
    if (expired) {
      // The uplink reports it in its status; retrying is pointless.
      if (!this.#expiredLogged) log.error("node certificate expired", { reason: expired });
      this.#expiredLogged = true;
      return this.#schedule(MAX_WAIT_MS);
    }
    try {
      await this.renew();
      this.#schedule(0);
    } catch (error) {
      log.warn("node certificate renewal failed; retrying", { parent: parentSite, reason: VmtreeError.from(error).message });
      this.#schedule(retryDelayMs(chain));
    }
  }

  /** Renews now: a new key and CSR, the parent's signature, the files written, then `onRenewed`. */
  async renew(): Promise<void> {
    const { dir, site, parentSite, address, identity, log } = this.#options;
    const keys = await generateKeyPair();
    const client = new ParentServiceClient(address, this.#options.credentials(), { ...LINK_CLIENT_OPTIONS, ...channelOptionsFor(parentSite) });
    let chainPem: string;
    try {
      ({ node_cert_chain_pem: chainPem } = await unaryCall(client.renewCertificate.bind(client), { node_csr_pem: createCsr(site, "node", keys) }, CALL_TIMEOUT_MS));
    } finally {
      client.close();
    }
    if (this.#closed) return;
    // The new certificate must name this site, chain to the root and match the new key.
    checkIdentity({ ...identity, nodeCertChainPem: chainPem, nodeKeyPem: keys.privateKeyPem }, site, {
      rootCa: dir.rootCaFile, nodeCert: `the renewed certificate from ${parentSite}`, nodeKey: "the renewed key", caCert: dir.caCertFile, caKey: dir.caKeyFile, config: dir.configFile, root: dir.root,
    });
    const previous = serialOf(leafOf(identity.nodeCertChainPem));
    await writeAtomically(renewed(dir.nodeKeyFile), keys.privateKeyPem, 0o600);
    await writeAtomically(renewed(dir.nodeCertFile), chainPem, 0o644);
    await rename(renewed(dir.nodeKeyFile), dir.nodeKeyFile);
    await rename(renewed(dir.nodeCertFile), dir.nodeCertFile);
    identity.nodeCertChainPem = chainPem;
    identity.nodeKeyPem = keys.privateKeyPem;
    const serial = serialOf(leafOf(chainPem));
    const validTo = new X509Certificate(leafOf(chainPem)).validTo;
    log.info("node certificate renewed", { parent: parentSite, serial, validTo: new Date(validTo).toISOString() });
    await this.#options.audit
      .append({ actor: "node", action: "enrolment.renew", target: site, result: "ok", details: { serial, previous_serial: previous, parent: parentSite } })
      .catch(() => undefined);
    await this.#options.onRenewed();
  }
}
