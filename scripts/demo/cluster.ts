import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";
import { DemoNode } from "./demo-node.ts";

/** The listen address of every node: loopback, and a port the node picks and keeps. */
export const LISTEN = "127.0.0.1:0";

/**
 * The demo's tree of nodes, all inside one demo directory: `<dir>/<site>/` is a node's
 * data directory, `<dir>/logs/<site>.log` its log, and `<dir>/inventory/` holds the
 * inventories the demo writes. A node's parent link may run through a proxy on loopback
 * that the demo cuts and restores. `close()` stops every node that runs and every proxy;
 * it is idempotent and a second call returns the same promise.
 */
export class Cluster {
  readonly dir: string;
  readonly logDir: string;
  readonly inventoryDir: string;
  readonly #signal: AbortSignal;
  readonly #onUnexpectedExit: (node: DemoNode, how: string) => void;
  readonly #nodes = new Map<string, DemoNode>();
  readonly #proxies = new Map<string, TcpProxy>();
  #closing: Promise<{ site: string; how: string }[]> | undefined;

  private constructor(dir: string, signal: AbortSignal, onUnexpectedExit: (node: DemoNode, how: string) => void) {
    this.dir = dir;
    this.logDir = join(dir, "logs");
    this.inventoryDir = join(dir, "inventory");
    this.#signal = signal;
    this.#onUnexpectedExit = onUnexpectedExit;
  }

  /** Wipes `dir` and creates an empty cluster in it. */
  static async create(dir: string, signal: AbortSignal, onUnexpectedExit: (node: DemoNode, how: string) => void): Promise<Cluster> {
    await rm(dir, { recursive: true, force: true });
    const cluster = new Cluster(dir, signal, onUnexpectedExit);
    await mkdir(cluster.logDir, { recursive: true });
    await mkdir(cluster.inventoryDir, { recursive: true });
    return cluster;
  }

  /** Every node, in the order they were added. */
  get nodes(): DemoNode[] {
    return [...this.#nodes.values()];
  }

  /** The node of `site`; throws when the cluster has none. */
  node(site: string): DemoNode {
    const node = this.#nodes.get(site);
    if (!node) throw new Error(`the demo has no node ${site}`);
    return node;
  }

  /** `vmtree init` a root node for `site` and start serving it. */
  async createRoot(site: string): Promise<DemoNode> {
    const node = this.#add(site);
    await node.init(LISTEN);
    await node.serve();
    return node;
  }

  /**
   * Invites `site` at its parent (its id minus the last segment), joins it and starts serving
   * it; with `throughProxy` its parent link runs through a proxy, see {@link linkProxy}.
   */
  async enrol(site: string, options: { throughProxy?: boolean } = {}): Promise<DemoNode> {
    const node = this.#add(site);
    if (node.parentSite === undefined) throw new Error(`${site} is a root id; create it with createRoot`);
    const parent = this.node(node.parentSite);
    const token = await parent.invite(site);
    await node.join(token, LISTEN);
    if (!options.throughProxy) {
      await node.serve();
      return node;
    }
    const [host, port] = parent.address.split(":");
    const proxy = await startTcpProxy({ target: { host: host!, port: Number(port) } });
    this.#proxies.set(site, proxy);
    await node.serve(["--parent", proxy.address]);
    return node;
  }

  /** The proxy `site`'s parent link runs through; throws when it has none. */
  linkProxy(site: string): TcpProxy {
    const proxy = this.#proxies.get(site);
    if (!proxy) throw new Error(`${site}'s parent link does not run through a proxy`);
    return proxy;
  }

  /**
   * Stops every node together (SIGTERM, SIGKILL after 5 s) and resolves with how each one
   * ended, `not running` for those already stopped; never rejects.
   */
  close(): Promise<{ site: string; how: string }[]> {
    this.#closing ??= Promise.allSettled(this.nodes.map((node) => node.stop())).then(async (ends) => {
      await Promise.all([...this.#proxies.values()].map((proxy) => proxy.close()));
      return ends.map((end, i) => ({ site: this.nodes[i]!.site, how: end.status === "fulfilled" ? end.value : `stop failed: ${String(end.reason)}` }));
    });
    return this.#closing;
  }

  /** SIGKILLs every node at once; for a demo process that exits without `close()`. */
  killNow(): void {
    for (const node of this.nodes) node.killNow();
  }

  #add(site: string): DemoNode {
    if (this.#nodes.has(site)) throw new Error(`the demo already has a node ${site}`);
    const node = new DemoNode({
      site,
      dataDir: join(this.dir, site),
      logFile: join(this.logDir, `${site}.log`),
      signal: this.#signal,
      onUnexpectedExit: this.#onUnexpectedExit,
    });
    this.#nodes.set(site, node);
    return node;
  }
}
