import { chmod, rm } from "node:fs/promises";
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import { AdminServiceService } from "../gen/vmtree/v1/admin.ts";
import { EnrolmentServiceService } from "../gen/vmtree/v1/enrolment.ts";
import { ParentServiceService } from "../gen/vmtree/v1/link.ts";
import { ChildLinks } from "../link/child-links.ts";
import { createEnrolmentService } from "../link/enrolment-service.ts";
import { LINK_SERVER_OPTIONS } from "../link/grpc-options.ts";
import { bindServer, HANDSHAKE_TIMEOUT_MS, limitHandshakes, raiseReceiveWindow, shutdownServer } from "../link/grpc-server.ts";
import { createParentService, type ParentService } from "../link/parent-service.ts";
import { clientCredentials, serverCredentials } from "../link/tls.ts";
import { Uplink, type UplinkState } from "../link/uplink.ts";
import { Invitations } from "../pki/invitations.ts";
import { Revocations } from "../pki/revocations.ts";
import { PolicyStore } from "../policy/policy-store.ts";
import type { NodeStore } from "../store/node-store.ts";
import { openNodeStore, StoreIdentityError, type StoreMismatch } from "../store/store-identity.ts";
import { InventoryReplica } from "../sync/inventory-replica.ts";
import { UpstreamAcks } from "../sync/upstream-acks.ts";
import { createLogger, type Logger, type LogLevel } from "../util/log.ts";
import { checkListenAddress } from "./address.ts";
import { AdminOperations, MAX_IMPORT_BYTES } from "./admin-operations.ts";
import { createAdminService } from "./admin-service.ts";
import { DataDir, type NodeConfig } from "./data-dir.ts";
import { leafOf, readIdentity, type NodeIdentity } from "./identity.ts";
import { CertificateRenewal, expiredProblem, finishRenewal } from "./renewal.ts";
import { NodeCertificateProvider } from "../link/certificate-provider.ts";
import { withTolerantDecoding } from "../link/undecodable.ts";
import { parseBandwidth, parseSchedule } from "../transfer/bandwidth.ts";
import { Fragments } from "../transfer/fragments.ts";
import { LinkCap } from "../transfer/link-cap.ts";
import { LinkLimits } from "../transfer/link-limits.ts";
import { RateLimiter } from "../transfer/rate-limiter.ts";
import { signCsr } from "../pki/certificates.ts";

/** Options of {@link VmtreeNode.serve}. */
export interface ServeOptions {
  /** Overrides the parent address from node.json (to dial through a proxy, say). */
  parentAddress?: string;
  /**
   * How long `close` lets admin calls in flight finish (default 30 s). Past it, work not
   * yet committed is abandoned and its caller told so; work already committing finishes.
   */
  adminDrainMs?: number;
}

const SHUTDOWN_GRACE_MS = 2_000;
const ADMIN_DRAIN_MS = 30_000;
/** After the drain: how long abandoned calls get to report back before they are cancelled. */
const ADMIN_ABANDON_GRACE_MS = 5_000;
const AUDIT_SWEEP_INTERVAL_MS = 60 * 60 * 1000;
const DEFAULT_TRANSFER_CONCURRENCY = 8;

/**
 * One vmtree node on its data directory. `open` gives the local operations (what
 * the CLI uses when no node is running); `serve` adds the link server for children,
 * the admin socket and, below the root, the uplink to the parent. `close` stops all
 * of it together and is idempotent.
 */
export class VmtreeNode {
  readonly dir: DataDir;
  readonly config: NodeConfig;
  readonly identity: NodeIdentity;
  readonly store: NodeStore;
  readonly replica: InventoryReplica;
  readonly invitations: Invitations;
  readonly revocations: Revocations;
  readonly links: ChildLinks;
  readonly acks: UpstreamAcks;
  readonly audit: AuditLog;
  readonly policies: PolicyStore;
  /** Every fragment byte on the parent link passes this one limiter (DESIGN.md invariant 7). */
  readonly limiter: RateLimiter;
  readonly linkCap: LinkCap;
  /** The caps this node set for its children's links. */
  readonly linkLimits: LinkLimits;
  readonly fragments: Fragments;
  readonly operations: AdminOperations;
  readonly log: Logger;
  readonly startedMs = Date.now();
  #linkServer: Server | undefined;
  #parentService: ParentService | undefined;
  #adminServer: Server | undefined;
  #uplink: Uplink | undefined;
  #renewal: CertificateRenewal | undefined;
  #certificates: NodeCertificateProvider | undefined;
  #listen: string;
  #sweeper: NodeJS.Timeout | undefined;
  /** Retention sweeps running: `close` stops them and waits, so that no deletion goes unaudited. */
  readonly #sweeps = new Set<Promise<void>>();
  readonly #stopSweeps = new AbortController();
  #closing: Promise<void> | undefined;
  /** Admin calls whose handler has not answered yet. */
  readonly #adminCalls = new Set<Promise<void>>();
  #adminDrainMs = ADMIN_DRAIN_MS;
  readonly #stopping = new AbortController();

  private constructor(dir: DataDir, config: NodeConfig, identity: NodeIdentity, store: NodeStore, log: Logger) {
    this.dir = dir;
    this.config = config;
    this.identity = identity;
    this.store = store;
    this.replica = new InventoryReplica(store);
    this.invitations = new Invitations(store);
    this.revocations = new Revocations(store);
    this.links = new ChildLinks(store);
    this.acks = new UpstreamAcks(store, this.replica);
    this.audit = new AuditLog(store, config.site, config.epoch);
    this.policies = new PolicyStore(store, config.site, {
      rootCaPem: identity.rootCaPem,
      // Read at each signature: a certificate renewal replaces them in `identity`.
      signer: {
        get nodeKeyPem() { return identity.nodeKeyPem; },
        get nodeCertChainPem() { return identity.nodeCertChainPem; },
      },
    });
    this.log = log;
    this.limiter = new RateLimiter({ bitsPerSecond: Infinity });
    this.linkCap = new LinkCap({
      limiter: this.limiter,
      store,
      configured: config.bandwidth === undefined ? undefined : parseBandwidth(config.bandwidth),
      schedule: config.bandwidthSchedule === undefined ? undefined : parseSchedule(config.bandwidthSchedule, "bandwidthSchedule"),
      log: log.child("transfers"),
    });
    this.linkLimits = new LinkLimits(store);
    this.fragments = new Fragments({
      site: config.site,
      parentSite: config.parent?.site,
      store,
      dir: dir.fragmentsDir,
      audit: this.audit,
      log: log.child("fragments"),
      limiter: this.limiter,
      concurrency: config.transferConcurrency ?? DEFAULT_TRANSFER_CONCURRENCY,
      isChild: async (site) => (await this.invitations.child(site)) !== undefined,
    });
    this.operations = new AdminOperations(this);
    this.#listen = config.listen;
  }

  /**
   * Opens the node's store and identity without touching the network.
   * Rejects with `failed_precondition` when the directory holds no node or a running node holds it.
   */
  static async open(dataDir: string, options: { logLevel?: LogLevel } = {}): Promise<VmtreeNode> {
    const dir = new DataDir(dataDir);
    const config = await dir.readConfig();
    await finishRenewal(dir);
    const identity = await readIdentity(dir, config.site);
    let store: NodeStore;
    try {
      store = await openNodeStore(dir.dbDir, config);
    } catch (error) {
      if (error instanceof StoreIdentityError) throw storeRefusal(dir, config, error.mismatch);
      throw error;
    }
    return new VmtreeNode(dir, config, identity, store, createLogger(config.site, options.logLevel));
  }

  /** Aborted when `close` gives up on admin work in flight: what has not committed must not. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  get isRoot(): boolean {
    return this.config.parent === undefined;
  }

  /** The address children dial, with the bound port once serving. */
  get listen(): string {
    return this.#listen;
  }

  /** Starts serving children, the admin socket and the uplink; resolves once listening. */
  async serve(options: ServeOptions = {}): Promise<void> {
    if (options.adminDrainMs !== undefined) this.#adminDrainMs = options.adminDrainMs;
    await this.audit.append({ actor: "node", action: "node.start", target: this.config.site, result: "ok", details: { pid: process.pid } });
    await this.links.load((await this.invitations.children()).map((child) => child.site));
    await this.fragments.open();
    await this.linkCap.start();
    await this.#startLinkServer();
    await this.#startAdminServer();
    if (this.config.parent) {
      const parent = this.config.parent;
      const address = options.parentAddress ?? parent.address;
      // Read per session and per renewal: a renewal replaces the certificate and key in place.
      const credentials = () => {
        const expired = expiredProblem(this.identity.nodeCertChainPem, this.config.site, parent.site);
        if (expired) throw new VmtreeError("failed_precondition", expired);
        return clientCredentials(
          { rootCa: this.identity.rootCaPem, nodeCertChain: this.identity.nodeCertChainPem, nodeKey: this.identity.nodeKeyPem },
          parent.site,
        );
      };
      this.#uplink = new Uplink({
        site: this.config.site,
        epoch: this.config.epoch,
        parentSite: parent.site,
        address,
        credentials,
        replica: this.replica,
        acks: this.acks,
        audit: this.audit,
        policies: this.policies,
        revocations: this.revocations,
        store: this.store,
        fragments: this.fragments,
        cap: this.linkCap,
        log: this.log.child("uplink"),
      });
      this.#uplink.start();
      this.#renewal = new CertificateRenewal({
        dir: this.dir,
        site: this.config.site,
        parentSite: parent.site,
        address,
        identity: this.identity,
        credentials,
        audit: this.audit,
        log: this.log.child("renewal"),
        onRenewed: async () => {
          // The link server presents the new certificate from its next handshake, and the
          // uplink moves to a connection that presents it to the parent.
          await this.#certificates?.reload();
          await this.#uplink?.handOver();
        },
      });
      this.#renewal.start();
    }
    this.#sweeper = setInterval(() => this.#track(this.#sweep()), AUDIT_SWEEP_INTERVAL_MS);
    this.#track(this.#sweepFragments());
  }

  #track(sweep: Promise<void>): void {
    this.#sweeps.add(sweep);
    void sweep.finally(() => this.#sweeps.delete(sweep));
  }

  /** Applies fragment and request retention; a failure is logged and retried at the next sweep. */
  async #sweepFragments(): Promise<void> {
    try {
      await this.fragments.sweep(Date.now(), this.#stopSweeps.signal);
    } catch (error) {
      this.log.warn("fragment retention sweep failed", { reason: VmtreeError.from(error).message });
    }
  }

  /** Applies audit retention; a failure is logged and retried at the next sweep. */
  async #sweep(): Promise<void> {
    await this.#sweepFragments();
    if (this.#stopSweeps.signal.aborted) return;
    try {
      const deleted = await this.operations.pruneAudit("node");
      if (deleted > 0) this.log.info("audit entries past retention deleted", { deleted });
    } catch (error) {
      this.log.warn("audit retention sweep failed", { reason: VmtreeError.from(error).message });
    }
  }

  async #startLinkServer(): Promise<void> {
    const server = new Server(LINK_SERVER_OPTIONS);
    const caChain = this.identity.caCertChainPem;
    const enrolment = withTolerantDecoding(
      EnrolmentServiceService,
      createEnrolmentService({
        site: this.config.site,
        rootCaPem: this.identity.rootCaPem,
        issuer: { certPem: leafOf(caChain), privateKeyPem: this.identity.caKeyPem },
        issuerChainPem: caChain,
        invitations: this.invitations,
        revocations: this.revocations,
        audit: this.audit,
        log: this.log.child("enrolment"),
      }) as unknown as UntypedServiceImplementation,
    );
    server.addService(enrolment.definition, enrolment.implementation);
    this.#parentService = createParentService({
      site: this.config.site,
      replica: this.replica,
      audit: this.audit,
      invitations: this.invitations,
      policies: this.policies,
      revocations: this.revocations,
      policyAgeMs: async () => (await this.operations.policyState()).age_ms,
      links: this.links,
      issueNodeCertificate: (site, csrPem) => ({
        nodeCert: signCsr(csrPem, site, "node", { certPem: leafOf(caChain), privateKeyPem: this.identity.caKeyPem }),
        chainPem: caChain,
      }),
      fragments: this.fragments,
      limits: this.linkLimits,
      log: this.log.child("children"),
    });
    const parent = withTolerantDecoding(ParentServiceService, this.#parentService.implementation as unknown as UntypedServiceImplementation);
    server.addService(parent.definition, parent.implementation);
    this.#linkServer = server;
    const { host, port } = checkListenAddress(this.config.listen);
    const bound = await bindServer(server, this.config.listen, serverCredentials(this.dir, (this.#certificates = new NodeCertificateProvider(this.dir))));
    raiseReceiveWindow(server, this.log);
    limitHandshakes(server, HANDSHAKE_TIMEOUT_MS, this.log);
    this.#listen = `${host}:${bound}`;
    if (port === 0) {
      // Children dial the address in their token for ever; keep the port that was picked.
      await this.dir.writeConfig({ ...this.config, listen: this.#listen });
    }
    this.log.info("listening for children", { address: this.#listen });
  }

  async #startAdminServer(): Promise<void> {
    const socket = this.dir.adminSocket;
    // The store's lock proves no other node runs here, so a socket file left behind is stale.
    await rm(socket, { force: true });
    const server = new Server({ "grpc.max_receive_message_length": MAX_IMPORT_BYTES + 1024 * 1024 });
    server.addService(AdminServiceService, this.#trackCalls(createAdminService(this.operations, this.log.child("admin")) as unknown as UntypedServiceImplementation));
    this.#adminServer = server;
    await bindServer(server, `unix:${socket}`, ServerCredentials.createInsecure());
    await chmod(socket, 0o600);
  }

  /** Wraps every admin method so that `close` can wait for the calls in flight. */
  #trackCalls(service: UntypedServiceImplementation): UntypedServiceImplementation {
    const tracked: UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(service)) {
      tracked[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        let answered!: () => void;
        const pending = new Promise<void>((resolve) => (answered = resolve));
        this.#adminCalls.add(pending);
        (handler as (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void)(call, (error, value) => {
          this.#adminCalls.delete(pending);
          answered();
          callback(error, value);
        });
      };
    }
    return tracked;
  }

  /**
   * Stops the admin server: no new calls, calls in flight finish (within the drain
   * bound; past it uncommitted work is abandoned and answered with an error), then
   * the connections close. Resolves as soon as that is done, not after a fixed wait.
   */
  async #stopAdminServer(server: Server): Promise<void> {
    const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    const drained = async (): Promise<void> => {
      while (this.#adminCalls.size > 0) await Promise.all(this.#adminCalls);
    };
    if (!(await within(drained(), this.#adminDrainMs))) {
      this.log.warn("admin calls still running at shutdown; abandoning what has not committed", { calls: this.#adminCalls.size });
      this.#stopping.abort();
      if (!(await within(drained(), ADMIN_ABANDON_GRACE_MS))) server.forceShutdown();
    }
    // Answers are written; a client still holding its connection open must not hold the exit.
    if (!(await within(closed, SHUTDOWN_GRACE_MS))) server.forceShutdown();
  }

  /** Whether the link server runs (as opposed to a node opened for a local command). */
  get serving(): boolean {
    return this.#linkServer !== undefined;
  }

  /** Makes the child holding `origin` reconnect and resend from this node's checkpoints. */
  restartChildSessionsFor(origin: string): void {
    this.#parentService?.restartSessionsFor(origin);
  }

  /** The parent link's state, when this node is serving below a root. */
  uplinkState(): UplinkState | undefined {
    return this.#uplink?.state();
  }

  /** Stops everything this node started and closes the store; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweeper);
      this.#stopSweeps.abort();
      // The admin server stops taking calls at once and drains beside the links' shutdown.
      const admin = this.#adminServer && this.#stopAdminServer(this.#adminServer);
      await this.#renewal?.close();
      await this.#uplink?.close();
      await this.fragments.close();
      this.linkCap.close();
      this.limiter.close();
      await this.#parentService?.closeSessions();
      await Promise.allSettled([this.#linkServer && shutdownServer(this.#linkServer, SHUTDOWN_GRACE_MS), admin]);
      // A call cancelled past every bound may still be running; the store waits for it.
      await within(Promise.all(this.#adminCalls), ADMIN_ABANDON_GRACE_MS);
      // A sweep deletes a file, then audits it: closing the store between the two would lose the record.
      await Promise.all(this.#sweeps);
      if (this.serving) {
        await this.audit.append({ actor: "node", action: "node.stop", target: this.config.site, result: "ok" }).catch(() => undefined);
      }
      await this.store.close();
      if (this.#adminServer) await rm(this.dir.adminSocket, { force: true });
    })();
    return this.#closing;
  }
}

/** Resolves true when `work` settles within `ms`, false otherwise. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The refusal of a store that is not this node's: its sequences and checkpoints start
 * again (or belong to someone else), so the parent could no longer tell its changes from
 * the old ones (DESIGN.md invariants 2 and 4). Only a new epoch, by a new enrolment, does.
 */
function storeRefusal(dir: DataDir, config: NodeConfig, mismatch: StoreMismatch): VmtreeError {
  const site = config.site;
  const remedy = config.parent
    ? `enrol the site again with a new invitation (vmtree invite on ${config.parent.site}, then vmtree join into an empty data directory) to start a new epoch`
    : "a root cannot be enrolled again: restore the whole data directory from its backup, or create a new tree with vmtree init";
  if (mismatch.kind === "other") {
    const found = mismatch.found;
    return new VmtreeError(
      "failed_precondition",
      `the store in ${dir.dbDir} belongs to ${found.site} epoch ${found.epoch} (store ${found.storeId}), but ${dir.configFile} is ${site} epoch ${config.epoch} (store ${config.storeId ?? "none"}); ` +
        `put back this data directory's own store, or ${remedy}`,
    );
  }
  return new VmtreeError(
    "failed_precondition",
    `the store in ${dir.dbDir} holds no data of ${site} (was it deleted or replaced?); its changes could no longer be told apart from the old ones: ${remedy}`,
  );
}
