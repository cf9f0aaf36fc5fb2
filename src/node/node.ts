import { chmod, rm } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import { AdminServiceService } from "../gen/vmtree/v1/admin.ts";
import { EnrolmentServiceService } from "../gen/vmtree/v1/enrolment.ts";
import { ParentServiceService } from "../gen/vmtree/v1/link.ts";
import { ChildLinks } from "../link/child-links.ts";
import { createEnrolmentService } from "../link/enrolment-service.ts";
import { LINK_SERVER_OPTIONS } from "../link/grpc-options.ts";
import { bindServer, raiseReceiveWindow, shutdownServer } from "../link/grpc-server.ts";
import { createParentService, type ParentService } from "../link/parent-service.ts";
import { clientCredentials, serverCredentials } from "../link/tls.ts";
import { Uplink, type UplinkState } from "../link/uplink.ts";
import { Invitations } from "../pki/invitations.ts";
import { NodeStore } from "../store/node-store.ts";
import { InventoryReplica } from "../sync/inventory-replica.ts";
import { UpstreamAcks } from "../sync/upstream-acks.ts";
import { createLogger, type Logger, type LogLevel } from "../util/log.ts";
import { checkListenAddress } from "./address.ts";
import { AdminOperations, MAX_IMPORT_BYTES } from "./admin-operations.ts";
import { createAdminService } from "./admin-service.ts";
import { DataDir, type NodeConfig } from "./data-dir.ts";
import { leafOf, readIdentity, type NodeIdentity } from "./identity.ts";

/** Options of {@link VmtreeNode.serve}. */
export interface ServeOptions {
  /** Overrides the parent address from node.json (to dial through a proxy, say). */
  parentAddress?: string;
}

const SHUTDOWN_GRACE_MS = 2_000;
const AUDIT_SWEEP_INTERVAL_MS = 60 * 60 * 1000;

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
  readonly links: ChildLinks;
  readonly acks: UpstreamAcks;
  readonly audit: AuditLog;
  readonly operations: AdminOperations;
  readonly log: Logger;
  readonly startedMs = Date.now();
  #linkServer: Server | undefined;
  #parentService: ParentService | undefined;
  #adminServer: Server | undefined;
  #uplink: Uplink | undefined;
  #listen: string;
  #sweeper: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  private constructor(dir: DataDir, config: NodeConfig, identity: NodeIdentity, store: NodeStore, log: Logger) {
    this.dir = dir;
    this.config = config;
    this.identity = identity;
    this.store = store;
    this.replica = new InventoryReplica(store);
    this.invitations = new Invitations(store);
    this.links = new ChildLinks(store);
    this.acks = new UpstreamAcks(store, this.replica);
    this.audit = new AuditLog(store, config.site, config.epoch);
    this.operations = new AdminOperations(this);
    this.log = log;
    this.#listen = config.listen;
  }

  /**
   * Opens the node's store and identity without touching the network.
   * Rejects with `failed_precondition` when the directory holds no node or a running node holds it.
   */
  static async open(dataDir: string, options: { logLevel?: LogLevel } = {}): Promise<VmtreeNode> {
    const dir = new DataDir(dataDir);
    const config = await dir.readConfig();
    const identity = await readIdentity(dir);
    const store = await NodeStore.open(dir.dbDir);
    return new VmtreeNode(dir, config, identity, store, createLogger(config.site, options.logLevel));
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
    await this.audit.append({ actor: "node", action: "node.start", target: this.config.site, result: "ok", details: { pid: process.pid } });
    await this.links.load((await this.invitations.children()).map((child) => child.site));
    await this.#startLinkServer();
    await this.#startAdminServer();
    if (this.config.parent) {
      const parent = this.config.parent;
      this.#uplink = new Uplink({
        site: this.config.site,
        epoch: this.config.epoch,
        parentSite: parent.site,
        address: options.parentAddress ?? parent.address,
        credentials: () =>
          clientCredentials(
            { rootCa: this.identity.rootCaPem, nodeCertChain: this.identity.nodeCertChainPem, nodeKey: this.identity.nodeKeyPem },
            parent.site,
          ),
        replica: this.replica,
        acks: this.acks,
        audit: this.audit,
        store: this.store,
        log: this.log.child("uplink"),
      });
      this.#uplink.start();
    }
    this.#sweeper = setInterval(() => void this.#sweep(), AUDIT_SWEEP_INTERVAL_MS);
  }

  /** Applies audit retention; a failure is logged and retried at the next sweep. */
  async #sweep(): Promise<void> {
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
    server.addService(
      EnrolmentServiceService,
      createEnrolmentService({
        site: this.config.site,
        rootCaPem: this.identity.rootCaPem,
        issuer: { certPem: leafOf(caChain), privateKeyPem: this.identity.caKeyPem },
        issuerChainPem: caChain,
        invitations: this.invitations,
        audit: this.audit,
        log: this.log.child("enrolment"),
      }),
    );
    this.#parentService = createParentService({
      site: this.config.site,
      replica: this.replica,
      audit: this.audit,
      invitations: this.invitations,
      links: this.links,
      log: this.log.child("children"),
    });
    server.addService(ParentServiceService, this.#parentService.implementation);
    this.#linkServer = server;
    const { host, port } = checkListenAddress(this.config.listen);
    const bound = await bindServer(server, this.config.listen, serverCredentials(this.dir));
    raiseReceiveWindow(server, this.log);
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
    server.addService(AdminServiceService, createAdminService(this.operations));
    this.#adminServer = server;
    await bindServer(server, `unix:${socket}`, ServerCredentials.createInsecure());
    await chmod(socket, 0o600);
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
      await this.#uplink?.close();
      await this.#parentService?.closeSessions();
      await Promise.allSettled([
        this.#linkServer && shutdownServer(this.#linkServer, SHUTDOWN_GRACE_MS),
        this.#adminServer && shutdownServer(this.#adminServer, SHUTDOWN_GRACE_MS),
      ]);
      if (this.serving) {
        await this.audit.append({ actor: "node", action: "node.stop", target: this.config.site, result: "ok" }).catch(() => undefined);
      }
      await this.store.close();
      if (this.#adminServer) await rm(this.dir.adminSocket, { force: true });
    })();
    return this.#closing;
  }
}
