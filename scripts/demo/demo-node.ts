import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, createWriteStream, openSync } from "node:fs";
import { createInterface, type Interface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import type { auditEntryJson, chainJson, statusJson } from "../../src/cli/format.ts";
import type { addedJson, fragmentJson, requestJson } from "../../src/cli/fragment-format.ts";
import type { policyStatusJson } from "../../src/cli/policy-format.ts";
import type { transfersJson } from "../../src/cli/transfer-format.ts";
import type { Camera } from "../../src/inventory/camera.ts";
import { REPO_ROOT, shown, VMTREE_BIN } from "./paths.ts";
import { runVmtree, VmtreeCommandError } from "./run-vmtree.ts";

/** One camera as `vmtree cameras list --json` prints it. */
export type SiteCamera = Camera & { site: string };

/** What `vmtree status --json` prints. */
export type NodeStatus = ReturnType<typeof statusJson>;

/** One chain of `vmtree audit verify --json`. */
export type AuditChain = ReturnType<typeof chainJson>;

/** One entry of `vmtree audit list --json`. */
export type AuditEntry = ReturnType<typeof auditEntryJson>;

/** What `vmtree policy status --json` prints. */
export type PolicyStatus = ReturnType<typeof policyStatusJson>;

/** What `vmtree fragments add --json` prints. */
export type AddedFragment = ReturnType<typeof addedJson>;

/** One fragment of `vmtree fragments list --json`. */
export type HeldFragment = ReturnType<typeof fragmentJson>;

/** What `vmtree fragments request --json` prints. */
export type FragmentRequest = ReturnType<typeof requestJson>;

/** What `vmtree transfers --json` prints. */
export type Transfers = ReturnType<typeof transfersJson>;

/** A recording for `vmtree fragments add`; paths relative to the repository, where commands run. */
export interface Recording {
  camera: string;
  file: string;
  start: string;
  end: string;
}

/** A reasoned request for `vmtree fragments request` (R-28). */
export interface FragmentAsk {
  site: string;
  camera: string;
  from: string;
  to: string;
  reason: string;
  requestedBy: string;
}

/** What `vmtree authorize --json` prints. */
export interface Decision {
  decision: "allow" | "deny";
  binding: string | null;
  origin: string | null;
  version: number | null;
  reason: string;
}

/**
 * Where a demo node is in its life: `new` (no data directory), `enrolled` (init or join
 * done), then `starting → serving → stopping → stopped`; a stopped node may serve again.
 */
export type NodeState = "new" | "enrolled" | "starting" | "serving" | "stopping" | "stopped";

/** Options of {@link DemoNode}. */
export interface DemoNodeOptions {
  site: string;
  dataDir: string;
  logFile: string;
  /** Aborts every command and wait of this node (Ctrl-C). */
  signal: AbortSignal;
  /** Told when the serving process exits without being asked to. */
  onUnexpectedExit: (node: DemoNode, how: string) => void;
}

const SERVE_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const SERVING_LINE = /^vmtree node (\S+) serving on (\S+)$/;

/**
 * One vmtree node of the demo, driven only through the `vmtree` CLI: every command and
 * the serving node itself are separate OS processes. The serving process writes its
 * stderr (the node's log) and its stdout lines to `logFile`, appending across restarts.
 */
export class DemoNode {
  readonly site: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The id of the parent site (the id minus its last segment); undefined for the root. */
  readonly parentSite: string | undefined;
  readonly #options: DemoNodeOptions;
  #state: NodeState = "new";
  #process: ChildProcess | undefined;
  #exited: Promise<string> | undefined;
  #stopping: Promise<string> | undefined;
  #address = "";
  #serveArgs: readonly string[] = [];

  constructor(options: DemoNodeOptions) {
    this.#options = options;
    this.site = options.site;
    this.dataDir = options.dataDir;
    this.logFile = options.logFile;
    this.parentSite = options.site.includes(".") ? options.site.slice(0, options.site.lastIndexOf(".")) : undefined;
  }

  get state(): NodeState {
    return this.#state;
  }

  /** HOST:PORT the node reported when it last started serving; empty before that. */
  get address(): string {
    return this.#address;
  }

  /** `vmtree init`: makes this node a root with its own CA. */
  async init(listen: string): Promise<void> {
    this.#expect("new");
    await this.#vmtree(["init", "--data", this.dataDir, "--site", this.site, "--listen", listen]);
    this.#state = "enrolled";
  }

  /** `vmtree join`: enrols this node with the parent that issued `token`. */
  async join(token: string, listen: string): Promise<void> {
    this.#expect("new");
    await this.#vmtree(["join", "--data", this.dataDir, "--token", token, "--listen", listen]);
    this.#state = "enrolled";
  }

  /**
   * `vmtree invite` for the direct child `childSite`; resolves with the token, which is
   * all the command prints. Rejects when the output is not a single token.
   */
  async invite(childSite: string): Promise<string> {
    const token = (await this.#vmtree(["invite", "--data", this.dataDir, "--site", childSite])).trim();
    if (token === "" || /\s/.test(token)) throw new Error(`\`vmtree invite\` on ${this.site} printed more than a token: ${JSON.stringify(token)}`);
    return token;
  }

  /** `vmtree cameras import`; resolves with the command's one-line report. */
  async importCameras(file: string): Promise<string> {
    return (await this.#vmtree(["cameras", "import", "--data", this.dataDir, file])).trim();
  }

  /** `vmtree cameras list --json`: the cameras of this node's subtree. */
  async listCameras(): Promise<SiteCamera[]> {
    return JSON.parse(await this.#vmtree(["cameras", "list", "--data", this.dataDir, "--json"])) as SiteCamera[];
  }

  /** `vmtree status --json`. */
  async status(): Promise<NodeStatus> {
    return JSON.parse(await this.#vmtree(["status", "--data", this.dataDir, "--json"])) as NodeStatus;
  }

  /** `vmtree audit verify --json`: every audit chain this node holds; exit 1 (a bad chain) is an answer too. */
  async verifyAudit(): Promise<AuditChain[]> {
    const args = ["audit", "verify", "--data", this.dataDir, "--json"];
    const stdout = await this.#vmtree(args).catch((error: unknown) => {
      if (error instanceof VmtreeCommandError && error.exitCode === 1 && error.stdout.trim().startsWith("[")) return error.stdout;
      throw error;
    });
    return JSON.parse(stdout) as AuditChain[];
  }

  /** `vmtree audit list --json --site SITE --action ACTION`. */
  async listAudit(site: string, action: string): Promise<AuditEntry[]> {
    return JSON.parse(await this.#vmtree(["audit", "list", "--data", this.dataDir, "--json", "--site", site, "--action", action])) as AuditEntry[];
  }

  /** `vmtree policy apply`; resolves with what it printed. */
  async applyPolicy(file: string): Promise<string> {
    return (await this.#vmtree(["policy", "apply", "--data", this.dataDir, file])).trimEnd();
  }

  /** `vmtree policy status --json`. */
  async policyStatus(): Promise<PolicyStatus> {
    return JSON.parse(await this.#vmtree(["policy", "status", "--data", this.dataDir, "--json"])) as PolicyStatus;
  }

  /** `vmtree authorize --json` for a camera of this site; a deny (exit 1) is an answer too. */
  async authorize(user: string, action: string, camera: string): Promise<Decision> {
    const args = ["authorize", "--data", this.dataDir, "--user", user, "--action", action, "--camera", camera, "--json"];
    const stdout = await this.#vmtree(args).catch((error: unknown) => {
      if (error instanceof VmtreeCommandError && error.exitCode === 1 && error.stdout.trim().startsWith("{")) return error.stdout;
      throw error;
    });
    return JSON.parse(stdout) as Decision;
  }

  /** `vmtree limit`: caps the fragment bandwidth of a direct child's link; resolves with what it printed. */
  async limit(child: string, bandwidth: string): Promise<string> {
    return (await this.#vmtree(["limit", "--data", this.dataDir, "--site", child, "--bandwidth", bandwidth])).trimEnd();
  }

  /** `vmtree fragments add --json`. */
  async addFragment({ camera, file, start, end }: Recording): Promise<AddedFragment> {
    const args = ["fragments", "add", "--data", this.dataDir, "--camera", camera, "--file", file, "--start", start, "--end", end, "--json"];
    return JSON.parse(await this.#vmtree(args)) as AddedFragment;
  }

  /** `vmtree fragments request --json`. */
  async requestFragments(ask: FragmentAsk): Promise<FragmentRequest> {
    const args = ["fragments", "request", "--data", this.dataDir, "--site", ask.site, "--camera", ask.camera, "--from", ask.from, "--to", ask.to];
    return JSON.parse(await this.#vmtree([...args, "--reason", ask.reason, "--requested-by", ask.requestedBy, "--json"])) as FragmentRequest;
  }

  /** `vmtree fragments list --json`: the fragments held here. */
  async listFragments(): Promise<HeldFragment[]> {
    return JSON.parse(await this.#vmtree(["fragments", "list", "--data", this.dataDir, "--json"])) as HeldFragment[];
  }

  /** `vmtree fragments export`; resolves with what it printed. */
  async exportFragment(id: string, out: string): Promise<string> {
    return (await this.#vmtree(["fragments", "export", "--data", this.dataDir, "--id", id, "--out", out])).trimEnd();
  }

  /** `vmtree transfers --json`. */
  async transfers(): Promise<Transfers> {
    return JSON.parse(await this.#vmtree(["transfers", "--data", this.dataDir, "--json"])) as Transfers;
  }

  /** `vmtree transfers`, as an operator reads it. */
  transfersText(): Promise<string> {
    return this.#vmtree(["transfers", "--data", this.dataDir]);
  }

  /** `vmtree status`, as an operator reads it. */
  statusText(): Promise<string> {
    return this.#vmtree(["status", "--data", this.dataDir]);
  }

  /**
   * Starts `vmtree serve` with `args` (those of the last start when not given) and resolves
   * with HOST:PORT once the node prints that it is serving. Rejects (and stops the process)
   * when it exits first, after 20 s, or on abort.
   */
  async serve(args: readonly string[] = this.#serveArgs): Promise<string> {
    this.#expect("enrolled", "stopped");
    this.#serveArgs = args;
    this.#state = "starting";
    const child = this.#spawnServe();
    const lines = createInterface({ input: child.stdout! });
    const log = createWriteStream(this.logFile, { flags: "a" });
    lines.on("line", (line) => log.write(`${line}\n`));
    // stdout may deliver its last lines after "exit"; the log ends with stdout.
    lines.once("close", () => log.end());
    this.#process = child;
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        const how = signal ? `killed by ${signal}` : `exit ${code}`;
        if (this.#state === "serving") this.#options.onUnexpectedExit(this, how);
        resolve(how);
      });
      // A process that never started emits no "exit"; a failed kill() is seen by its caller.
      child.on("error", (error) => {
        if (child.pid === undefined) resolve(`failed to start: ${error.message}`);
      });
    });
    try {
      this.#address = await this.#servingAddress(child, lines);
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#state = "serving";
    return this.#address;
  }

  /**
   * Stops the serving process: SIGTERM, then SIGKILL if it is still running after 5 s.
   * Resolves with how it ended (`exit 0`, `killed by SIGKILL`); a call while stopping
   * returns the same promise, a call on a node that does not run resolves at once.
   */
  stop(): Promise<string> {
    if (this.#state !== "starting" && this.#state !== "serving" && this.#state !== "stopping") {
      return Promise.resolve("not running");
    }
    this.#stopping ??= this.#terminate().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  /** SIGKILLs the serving process at once; for the last moments of the demo process only. */
  killNow(): void {
    this.#process?.kill("SIGKILL");
  }

  async #terminate(): Promise<string> {
    this.#state = "stopping";
    const child = this.#process!;
    const exited = this.#exited!;
    child.kill("SIGTERM");
    const grace = new AbortController();
    const inTime = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS, false, { signal: grace.signal })]);
    grace.abort();
    if (!inTime) child.kill("SIGKILL");
    const how = await exited;
    this.#process = undefined;
    this.#state = "stopped";
    return inTime ? how : `${how} (did not stop within ${STOP_GRACE_MS / 1000} s of SIGTERM)`;
  }

  #spawnServe(): ChildProcess {
    // The child gets its own descriptor for the log; ours is closed right after the spawn.
    const stderr = openSync(this.logFile, "a");
    try {
      // A process group of its own keeps a terminal's Ctrl-C away from the node: `vmtree
      // serve` dies at once on a second signal, so a SIGINT from the terminal followed by
      // the demo's SIGTERM would cut its shutdown short. The demo alone stops its nodes.
      return spawn(process.execPath, [VMTREE_BIN, "serve", "--data", this.dataDir, ...this.#serveArgs], {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", stderr],
        detached: true,
      });
    } finally {
      closeSync(stderr);
    }
  }

  #servingAddress(child: ChildProcess, lines: Interface): Promise<string> {
    const signal = this.#options.signal;
    return new Promise((resolve, reject) => {
      const finish = (error: unknown, address?: string) => {
        clearTimeout(timer);
        lines.off("line", onLine);
        child.off("exit", onExit);
        child.off("error", onError);
        signal.removeEventListener("abort", onAbort);
        if (address === undefined) reject(error);
        else resolve(address);
      };
      const onLine = (line: string) => {
        const match = SERVING_LINE.exec(line);
        if (match?.[1] === this.site) finish(undefined, match[2]);
      };
      const onExit = (code: number | null, exitSignal: NodeJS.Signals | null) =>
        finish(new Error(`\`vmtree serve\` for ${this.site} ended (${exitSignal ?? `exit ${code}`}) before serving; see ${shown(this.logFile)}`));
      const onError = (error: Error) => finish(error);
      const onAbort = () => finish(signal.reason);
      const timer = setTimeout(
        () => finish(new Error(`${this.site} did not report serving within ${SERVE_TIMEOUT_MS / 1000} s; see ${shown(this.logFile)}`)),
        SERVE_TIMEOUT_MS,
      );
      lines.on("line", onLine);
      child.on("exit", onExit);
      child.on("error", onError);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #vmtree(args: string[]): Promise<string> {
    return runVmtree(args, this.#options.signal);
  }

  #expect(...states: NodeState[]): void {
    if (!states.includes(this.#state)) throw new Error(`${this.site} is ${this.#state}, expected ${states.join(" or ")}`);
  }
}
