import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { DemoNode } from "./demo-node.ts";

/** The listen address of every node: loopback, and a port the node picks and keeps. */
export const LISTEN = "127.0.0.1:0";

/**
 * The demo's tree of nodes, all inside one demo directory: `<dir>/<site>/` is a node's
 * data directory, `<dir>/logs/<site>.log` its log, and `<dir>/inventory/` holds the
 * inventories the demo writes. `close()` stops every node that
 * runs; it is idempotent and a second call returns the same promise.
 */
export class Cluster {
  readonly dir: string;
  readonly logDir: string;
  readonly inventoryDir: string;
  readonly #signal: AbortSignal;
  readonly #onUnexpectedExit: (node: DemoNode, how: string) => void;
  readonly #nodes = new Map<string, DemoNode>();
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

  /** Invites `site` at its parent (its id minus the last segment), joins it and starts serving it. */
  async enrol(site: string): Promise<DemoNode> {
    const node = this.#add(site);
    if (node.parentSite === undefined) throw new Error(`${site} is a root id; create it with createRoot`);
    const token = await this.node(node.parentSite).invite(site);
    await node.join(token, LISTEN);
    await node.serve();
    return node;
  }

  /**
   * Stops every node together (SIGTERM, SIGKILL after 5 s) and resolves with how each one
   * ended, `not running` for those already stopped; never rejects.
   */
  close(): Promise<{ site: string; how: string }[]> {
    this.#closing ??= Promise.allSettled(this.nodes.map((node) => node.stop())).then((ends) =>
      ends.map((end, i) => ({ site: this.nodes[i]!.site, how: end.status === "fulfilled" ? end.value : `stop failed: ${String(end.reason)}` })),
    );
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
