import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { experimental } from "@grpc/grpc-js";
import type { DataDir } from "../node/data-dir.ts";

type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

/** How often the files are re-read anyway, in case they were replaced by hand. */
const REFRESH_MS = 60_000;

/**
 * The certificate provider of a node's link server: its node certificate and key, and the
 * tree's root CA, read from the data directory. Unlike grpc-js's file watcher, a key and
 * certificate that do not belong together (read between the two renames of a renewal) are
 * ignored and the last good pair kept, so the server never drops connections for it; and
 * {@link reload} applies a renewal at once instead of at the next refresh.
 */
export class NodeCertificateProvider implements experimental.CertificateProvider {
  readonly #dir: DataDir;
  readonly #identityListeners = new Set<IdentityListener>();
  readonly #caListeners = new Set<CaListener>();
  #identity: experimental.IdentityCertificateUpdate;
  #ca: experimental.CaCertificateUpdate;
  #timer: NodeJS.Timeout | undefined;

  constructor(dir: DataDir) {
    this.#dir = dir;
    // The node checked these files before serving (identity.ts), so they are good here.
    this.#identity = { certificate: readFileSync(dir.nodeCertFile), privateKey: readFileSync(dir.nodeKeyFile) };
    this.#ca = { caCertificate: readFileSync(dir.rootCaFile) };
  }

  /** Re-reads the files and passes a changed, matching pair on to the server. */
  async reload(): Promise<void> {
    let read: [Buffer, Buffer, Buffer];
    try {
      read = await Promise.all([readFile(this.#dir.nodeCertFile), readFile(this.#dir.nodeKeyFile), readFile(this.#dir.rootCaFile)]);
    } catch {
      return; // keep the last good files; the next refresh tries again
    }
    const [certificate, privateKey, caCertificate] = read;
    if (!matches(certificate, privateKey)) return;
    if (!certificate.equals(this.#identity.certificate) || !privateKey.equals(this.#identity.privateKey)) {
      this.#identity = { certificate, privateKey };
      for (const listener of this.#identityListeners) listener(this.#identity);
    }
    if (!caCertificate.equals(this.#ca.caCertificate)) {
      this.#ca = { caCertificate };
      for (const listener of this.#caListeners) listener(this.#ca);
    }
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    process.nextTick(listener, this.#identity);
    this.#watch();
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
    this.#unwatch();
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    process.nextTick(listener, this.#ca);
    this.#watch();
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
    this.#unwatch();
  }

  #watch(): void {
    this.#timer ??= setInterval(() => void this.reload(), REFRESH_MS);
  }

  #unwatch(): void {
    if (this.#identityListeners.size > 0 || this.#caListeners.size > 0 || !this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Whether `keyPem` is the key of the first certificate of `chainPem`. */
function matches(chainPem: Buffer, keyPem: Buffer): boolean {
  try {
    const spki = (key: ReturnType<typeof createPublicKey>) => key.export({ type: "spki", format: "der" });
    return spki(createPublicKey(createPrivateKey(keyPem))).equals(spki(new X509Certificate(chainPem).publicKey));
  } catch {
    return false;
  }
}
