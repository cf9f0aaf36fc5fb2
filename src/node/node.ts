import { chmod, rm } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import { AdminServiceService, type GetStatusResponse, type LinkStatus } from "../gen/vmtree/v1/admin.ts";
import { EnrolmentServiceService } from "../gen/vmtree/v1/enrolment.ts";
import { ParentServiceService } from "../gen/vmtree/v1/link.ts";
import { parseInventory } from "../inventory/parse-inventory.ts";
import { ChildLinks } from "../link/child-links.ts";
import { createEnrolmentService } from "../link/enrolment-service.ts";
import { LINK_SERVER_OPTIONS } from "../link/grpc-options.ts";
import { bindServer, raiseReceiveWindow, shutdownServer } from "../link/grpc-server.ts";
import { createParentService, type ParentService } from "../link/parent-service.ts";
import { clientCredentials, serverCredentials } from "../link/tls.ts";
import { Uplink } from "../link/uplink.ts";
import { DEFAULT_INVITE_TTL_MS, Invitations } from "../pki/invitations.ts";
import { assertSiteId } from "../pki/site-id.ts";
import { NodeStore } from "../store/node-store.ts";
import { InventoryReplica, type ImportCounts, type SiteCamera } from "../sync/inventory-replica.ts";
import { UpstreamAcks } from "../sync/upstream-acks.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { checkListenAddress } from "./address.ts";
import { createAdminService } from "./admin-service.ts";
import { DataDir, type NodeConfig } from "./data-dir.ts";
import { leafOf, readIdentity, type NodeIdentity } from "./identity.ts";

/** Options of {@link VmtreeNode.serve}. */
export interface ServeOptions {
  /** Overrides the parent address from node.json (to dial through a proxy, say). */
  parentAddress?: string;
}

const SHUTDOWN_GRACE_MS = 2_000;
const MAX_IMPORT_BYTES = 64 * 1024 * 1024;

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
  readonly log: Logger;
  readonly startedMs = Date.now();
  #linkServer: Server | undefined;
  #parentService: ParentService | undefined;
  #adminServer: Server | undefined;
  #uplink: Uplink | undefined;
  #listen: string;
  #closing: Promise<void> | undefined;

  private constructor(dir: DataDir, config: NodeConfig, identity: NodeIdentity, store: NodeStore) {
    this.dir = dir;
    this.config = config;
    this.identity = identity;
    this.store = store;
    this.replica = new InventoryReplica(store);
    this.invitations = new Invitations(store);
    this.links = new ChildLinks(store);
    this.acks = new UpstreamAcks(store, this.replica);
    this.log = createLogger(config.site);
    this.#listen = config.listen;
  }

  /**
   * Opens the node's store and identity without touching the network.
   * Rejects with `failed_precondition` when the directory holds no node or a running node holds it.
   */
  static async open(dataDir: string): Promise<VmtreeNode> {
    const dir = new DataDir(dataDir);
    const config = await dir.readConfig();
    const identity = await readIdentity(dir);
    const store = await NodeStore.open(dir.dbDir);
    return new VmtreeNode(dir, config, identity, store);
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
        log: this.log.child("uplink"),
      });
      this.#uplink.start();
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
        log: this.log.child("enrolment"),
      }),
    );
    this.#parentService = createParentService({
      site: this.config.site,
      replica: this.replica,
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
    server.addService(AdminServiceService, createAdminService(this));
    this.#adminServer = server;
    await bindServer(server, `unix:${socket}`, ServerCredentials.createInsecure());
    await chmod(socket, 0o600);
  }

  /** Imports an inventory file's content as this site's complete inventory. */
  async importCameras(fileName: string, content: Uint8Array): Promise<ImportCounts> {
    if (content.byteLength > MAX_IMPORT_BYTES) {
      throw new VmtreeError("invalid_input", `${fileName}: the file is larger than ${MAX_IMPORT_BYTES} bytes`);
    }
    const parsed = parseInventory(fileName, content);
    if (!parsed.ok) throw parsed.error;
    const counts = await this.replica.importOwn(this.config.site, this.config.epoch, parsed.value);
    this.log.info("inventory imported", { file: fileName, ...counts });
    return counts;
  }

  /** Cameras of this node and its subtree, or of the subtree of `site`. */
  listCameras(site?: string): Promise<SiteCamera[]> {
    if (site !== undefined) assertSiteId(site);
    return this.replica.list(site);
  }

  /** Creates a join token for a direct child. */
  async createInvite(site: string, ttlMs = DEFAULT_INVITE_TTL_MS): Promise<{ token: string; expiresMs: number }> {
    if (checkListenAddress(this.#listen).port === 0) {
      throw new VmtreeError("failed_precondition", "this node listens on port 0 and has not picked its port yet; start `vmtree serve` first");
    }
    return this.invitations.create({
      ownSite: this.config.site,
      childSite: site,
      address: this.config.advertise ?? this.#listen,
      caFingerprint: this.identity.rootCaFingerprint,
      ttlMs,
    });
  }

  /** The node's state for `vmtree status`. */
  async status(): Promise<GetStatusResponse> {
    const cameras = await this.replica.list();
    const children = new Map(this.links.list().map((link) => [link.site, link]));
    const childLinks: LinkStatus[] = (await this.invitations.children()).map((child) => {
      const link = children.get(child.site);
      return {
        site: child.site,
        address: "",
        state: link?.state ?? "disconnected",
        since_ms: link?.sinceMs ?? 0,
        last_sync_ms: link?.lastSyncMs ?? 0,
        pending: link?.pending ?? 0,
        sent: 0,
        received: link?.received ?? 0,
        last_error: "",
        epoch: child.epoch,
      };
    });
    return {
      site: this.config.site,
      epoch: this.config.epoch,
      listen: this.#listen,
      is_root: this.isRoot,
      parent: await this.#parentStatus(),
      children: childLinks,
      own_cameras: cameras.filter((c) => c.site === this.config.site).length,
      subtree_cameras: cameras.length,
      started_ms: this.#linkServer ? this.startedMs : 0,
    };
  }

  async #parentStatus(): Promise<LinkStatus | undefined> {
    const parent = this.config.parent;
    if (!parent) return undefined;
    const link = this.#uplink?.state();
    return {
      site: parent.site,
      address: link?.address ?? parent.address,
      state: link?.state ?? "disconnected",
      since_ms: link?.sinceMs ?? 0,
      last_sync_ms: link?.lastSyncMs ?? 0,
      pending: await this.acks.pending(),
      sent: link?.sent ?? 0,
      received: 0,
      last_error: link ? link.lastError : "the node is not running",
      epoch: this.config.epoch,
    };
  }

  /** Stops everything this node started and closes the store; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#uplink?.close();
      await this.#parentService?.closeSessions();
      await Promise.allSettled([
        this.#linkServer && shutdownServer(this.#linkServer, SHUTDOWN_GRACE_MS),
        this.#adminServer && shutdownServer(this.#adminServer, SHUTDOWN_GRACE_MS),
      ]);
      await this.store.close();
      if (this.#adminServer) await rm(this.dir.adminSocket, { force: true });
    })();
    return this.#closing;
  }
}
