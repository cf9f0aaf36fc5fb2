import { readFile } from "node:fs/promises";
import { X509Certificate } from "node:crypto";
import { fingerprint, splitPemBundle } from "../pki/certificates.ts";
import type { DataDir } from "./data-dir.ts";

/** A node's certificates and keys as read from its data directory. */
export interface NodeIdentity {
  rootCaPem: string;
  rootCaFingerprint: string;
  /** Node certificate followed by its chain. */
  nodeCertChainPem: string;
  nodeKeyPem: string;
  /** This node's CA certificate, which signs its children's, followed by its chain. */
  caCertChainPem: string;
  caKeyPem: string;
}

/** Reads the identity files written by `init` or `join`. */
export async function readIdentity(dir: DataDir): Promise<NodeIdentity> {
  const [rootCaPem, nodeCertChainPem, nodeKeyPem, caCertChainPem, caKeyPem] = await Promise.all(
    [dir.rootCaFile, dir.nodeCertFile, dir.nodeKeyFile, dir.caCertFile, dir.caKeyFile].map((file) => readFile(file, "utf8")),
  );
  return {
    rootCaPem: rootCaPem!,
    rootCaFingerprint: fingerprint(rootCaPem!),
    nodeCertChainPem: nodeCertChainPem!,
    nodeKeyPem: nodeKeyPem!,
    caCertChainPem: caCertChainPem!,
    caKeyPem: caKeyPem!,
  };
}

/** The first certificate of a chain. */
export function leafOf(chainPem: string): string {
  const leaf = splitPemBundle(chainPem)[0];
  if (!leaf) throw new Error("empty certificate chain");
  return leaf;
}

/** Days until the node certificate expires (negative when expired). */
export function daysLeft(chainPem: string, now = Date.now()): number {
  return (Date.parse(new X509Certificate(leafOf(chainPem)).validTo) - now) / 86_400_000;
}
