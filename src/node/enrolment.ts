import { X509Certificate } from "node:crypto";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { VmtreeError } from "../errors.ts";
import { EnrolmentServiceClient, type JoinResponse } from "../gen/vmtree/v1/enrolment.ts";
import { channelOptionsFor, clientCredentials, unverifiedCredentials } from "../link/tls.ts";
import { unaryCall } from "../link/unary-call.ts";
import { createCsr, createRootCa, fingerprint, generateKeyPair, signCsr, splitPemBundle } from "../pki/certificates.ts";
import { decodeJoinToken, type JoinToken } from "../pki/join-token.ts";
import { assertSiteId, parentOf } from "../pki/site-id.ts";
import { createNodeStore, newStoreId } from "../store/store-identity.ts";
import { checkDialAddress, checkListenAddress } from "./address.ts";
import { DataDir, writeAtomically } from "./data-dir.ts";

const CALL_TIMEOUT_MS = 15_000;

/**
 * Creates a root node in an empty data directory: the tree's root CA and the root
 * node's certificate signed by it.
 * Rejects with `already_exists` when the directory already holds a node.
 */
export async function initRoot(options: { dataDir: string; site: string; listen: string; advertise?: string | undefined }): Promise<{ site: string; caFingerprint: string }> {
  const site = assertSiteId(options.site);
  checkListenAddress(options.listen);
  const advertise = advertised(options.advertise);
  const { dir, undo } = await claimDataDir(options.dataDir);
  try {
    await dir.create();
    const caKeys = await generateKeyPair();
    const rootCa = createRootCa(site, caKeys);
    const nodeKeys = await generateKeyPair();
    const nodeCert = signCsr(createCsr(site, "node", nodeKeys), site, "node", { certPem: rootCa, privateKeyPem: caKeys.privateKeyPem });
    await writeIdentity(dir, {
      rootCa,
      nodeCertChain: nodeCert + rootCa,
      nodeKey: nodeKeys.privateKeyPem,
      caCertChain: rootCa,
      caKey: caKeys.privateKeyPem,
    });
    // The store is created with its identity marker before node.json names it (see store-identity.ts).
    const { storeId } = await createNodeStore(dir.dbDir, { site, epoch: 1, storeId: newStoreId() });
    await dir.writeConfig({ site, epoch: 1, storeId, listen: options.listen, ...advertise, createdAt: new Date().toISOString() });
    return { site, caFingerprint: fingerprint(rootCa) };
  } catch (error) {
    await undo();
    throw error;
  }
}

/**
 * Enrols a child with a join token: pins the root CA by the token's fingerprint,
 * sends CSRs with the token's secret, and writes the issued certificates. Nothing is
 * written unless the parent accepted.
 */
export async function joinParent(options: { dataDir: string; token: string; listen: string; advertise?: string | undefined }): Promise<{ site: string; parent: string; epoch: number }> {
  const decoded = decodeJoinToken(options.token);
  if (!decoded.ok) throw decoded.error;
  const token = decoded.value;
  checkListenAddress(options.listen);
  const advertise = advertised(options.advertise);
  const expectedParent = parentOf(token.site);
  if (!expectedParent) throw new VmtreeError("invalid_argument", `the token names ${token.site}, a root id; a child id has a parent segment`);
  if (token.expiresMs <= Date.now()) {
    throw new VmtreeError("permission_denied", `the join token expired at ${new Date(token.expiresMs).toISOString()}; ask for a new one`);
  }
  // The data directory is checked and claimed before any key exists or the parent hears of us:
  // a token must not be used up by a join that then cannot write its node.
  const { dir, undo } = await claimDataDir(options.dataDir);
  try {
    return await enrol(dir, token, expectedParent, options.listen, advertise);
  } catch (error) {
    await undo();
    throw error;
  }
}

async function enrol(dir: DataDir, token: JoinToken, expectedParent: string, listen: string, advertise: { advertise?: string }): Promise<{ site: string; parent: string; epoch: number }> {
  const bundle = await withClient(new EnrolmentServiceClient(token.address, unverifiedCredentials(), channelOptionsFor(expectedParent)), (client) =>
    unaryCall(client.getTrustBundle.bind(client), {}, CALL_TIMEOUT_MS),
  );
  const presented = fingerprint(bundle.root_ca_pem);
  if (presented !== token.caFingerprint) {
    throw new VmtreeError(
      "permission_denied",
      `the parent at ${token.address} presents root CA ${presented}, but the token pins ${token.caFingerprint}; not joining`,
    );
  }
  if (bundle.parent_site !== expectedParent) {
    throw new VmtreeError("permission_denied", `the node at ${token.address} is ${bundle.parent_site}, not ${expectedParent}`);
  }

  const nodeKeys = await generateKeyPair();
  const caKeys = await generateKeyPair();
  const verified = new EnrolmentServiceClient(token.address, clientCredentials({ rootCa: bundle.root_ca_pem }, expectedParent), channelOptionsFor(expectedParent));
  const response = await withClient(verified, (client) =>
    unaryCall(
      client.join.bind(client),
      {
        site: token.site,
        secret: token.secret,
        node_csr_pem: createCsr(token.site, "node", nodeKeys),
        ca_csr_pem: createCsr(token.site, "ca", caKeys),
      },
      CALL_TIMEOUT_MS,
    ),
  );
  checkIssued(response, bundle.root_ca_pem, token.site);
  await dir.create();
  await writeIdentity(dir, {
    rootCa: bundle.root_ca_pem,
    nodeCertChain: response.node_cert_chain_pem,
    nodeKey: nodeKeys.privateKeyPem,
    caCertChain: response.ca_cert_chain_pem,
    caKey: caKeys.privateKeyPem,
  });
  const { storeId } = await createNodeStore(dir.dbDir, { site: token.site, epoch: response.epoch, storeId: newStoreId() });
  await dir.writeConfig({
    site: token.site,
    epoch: response.epoch,
    storeId,
    listen,
    parent: { site: expectedParent, address: token.address },
    ...advertise,
    createdAt: new Date().toISOString(),
  });
  return { site: token.site, parent: expectedParent, epoch: response.epoch };
}

function advertised(address: string | undefined): { advertise?: string } {
  if (address === undefined) return {};
  checkDialAddress(address, "advertise");
  return { advertise: address };
}

/**
 * Checks that `path` is an absent or empty directory and makes sure it exists, so that
 * nothing later can fail for want of it. `undo` puts things back as they were: it removes
 * what this created, or empties the directory that was empty.
 */
async function claimDataDir(path: string): Promise<{ dir: DataDir; undo: () => Promise<void> }> {
  const dir = new DataDir(path);
  const found = await stat(dir.root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw new VmtreeError("failed_precondition", `cannot use --data ${dir.root}: ${error.message}`, { cause: error });
  });
  if (found && !found.isDirectory()) {
    throw new VmtreeError("failed_precondition", `--data ${dir.root} is a file, not a directory; name an empty or absent directory`);
  }
  if (found) {
    if (await dir.exists()) {
      // A damaged node.json still means the directory is taken.
      const existing = await dir.readConfig().then((config) => `node ${config.site}`, () => "a node");
      throw new VmtreeError("already_exists", `${dir.root} already holds ${existing}; use an empty directory`);
    }
    const entries = await readdir(dir.root);
    if (entries.length > 0) {
      throw new VmtreeError("failed_precondition", `--data ${dir.root} is not empty (it holds ${entries.slice(0, 3).join(", ")}${entries.length > 3 ? ", …" : ""}); name an empty or absent directory`);
    }
    return { dir, undo: async () => { for (const entry of await readdir(dir.root).catch(() => [])) await rm(`${dir.root}/${entry}`, { recursive: true, force: true }); } };
  }
  let created: string | undefined;
  try {
    created = await mkdir(dir.root, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new VmtreeError("failed_precondition", `cannot create --data ${dir.root}: ${(error as Error).message}`, { cause: error });
  }
  return { dir, undo: async () => { if (created) await rm(created, { recursive: true, force: true }); } };
}

/** Checks that the issued certificates chain to the pinned root and name the site. */
function checkIssued(response: JoinResponse, rootCaPem: string, site: string): void {
  const chain = splitPemBundle(response.node_cert_chain_pem).map((pem) => new X509Certificate(pem));
  const root = new X509Certificate(rootCaPem);
  const ok =
    chain.length >= 2 &&
    chain[0]?.subject.includes(`CN=${site}`) &&
    chain.every((cert, i) => cert.verify((chain[i + 1] ?? root).publicKey)) &&
    chain.at(-1)?.fingerprint256 === root.fingerprint256;
  if (!ok) throw new VmtreeError("permission_denied", "the parent returned certificates that do not chain to the pinned root CA");
}

async function writeIdentity(
  dir: DataDir,
  pem: { rootCa: string; nodeCertChain: string; nodeKey: string; caCertChain: string; caKey: string },
): Promise<void> {
  try {
    await writeAtomically(dir.nodeKeyFile, pem.nodeKey, 0o600);
    await writeAtomically(dir.caKeyFile, pem.caKey, 0o600);
    await writeAtomically(dir.rootCaFile, pem.rootCa, 0o644);
    await writeAtomically(dir.nodeCertFile, pem.nodeCertChain, 0o644);
    await writeAtomically(dir.caCertFile, pem.caCertChain, 0o644);
  } catch (cause) {
    await rm(dir.tlsDir, { recursive: true, force: true });
    throw new VmtreeError("internal", `cannot write the certificates into ${dir.tlsDir}`, { cause });
  }
}

/** Runs `use` and closes the client whatever the outcome. */
async function withClient<C extends { close(): void }, T>(client: C, use: (client: C) => Promise<T>): Promise<T> {
  try {
    return await use(client);
  } finally {
    client.close();
  }
}
