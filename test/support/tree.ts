import { join } from "node:path";
import { expect } from "vitest";
import { makeTempDir, runCli, spawnNode, type ManagedProcess, type RunResult } from "./processes.ts";

/** `vmtree status --json` as scripts see it. */
export interface StatusJson {
  site: string;
  epoch: number;
  listen: string;
  running: boolean;
  root: boolean;
  parent: null | {
    site: string;
    address: string;
    state: string;
    since: string | null;
    lastSync: string | null;
    pending: number;
    sent: number;
    lastError: string | null;
    auditSent: number;
    auditPending: number;
    auditQuarantinedByParent: string[];
  };
  children: { site: string; epoch: number; state: string; since: string | null; lastSync: string | null; pending: number; received: number; auditReceived: number }[];
  cameras: { own: number; subtree: number };
  audit: { own: number; quarantined: { origin: string; epoch: number; seq: number; reason: string; since: string | null }[] };
  policy: null | { versions: { author: string; version: number }[]; syncedAt: string | null; ageMs: number; maxAgeMs: number | null; stale: boolean; damaged: string[] };
}

/** One chain of `vmtree audit verify --json`. */
export interface ChainJson {
  origin: string;
  epoch: number;
  entries: number;
  firstSeq: number;
  lastSeq: number;
  headHash: string;
  ok: boolean;
  badSeq: number | null;
  reason: string | null;
  quarantined: string | null;
}

/** One entry of `vmtree audit list --json`. */
export interface AuditEntryJson {
  origin: string;
  epoch: number;
  seq: number;
  time: string;
  actor: string;
  action: string;
  target: string;
  result: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** One camera of `vmtree cameras list --json`. */
export type CameraJson = Record<string, string | number> & { site: string; camera_id: string; stream_url: string };

const START_TIMEOUT_MS = 20_000;

/** A vmtree node driven through its CLI, as an operator would. */
export class TestNode {
  readonly site: string;
  readonly dir: string;
  process: ManagedProcess | undefined;
  /** The address it listens on, once served. */
  address = "";

  constructor(site: string, dir: string) {
    this.site = site;
    this.dir = dir;
  }

  /** Runs `vmtree ARGS --data DIR`. */
  cli(args: string[], timeoutMs?: number): Promise<RunResult> {
    return runCli([...args, "--data", this.dir], timeoutMs === undefined ? {} : { timeoutMs });
  }

  /** Starts `vmtree serve` and waits until it listens. */
  async serve(extra: string[] = []): Promise<void> {
    this.process = spawnNode(["serve", "--data", this.dir, ...extra]);
    const line = await this.process.waitForLine(/serving on \S+/, START_TIMEOUT_MS);
    this.address = /serving on (\S+)/.exec(line)![1]!;
  }

  /** SIGTERM and wait; asserts a clean exit. */
  async stop(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    if (!running) return;
    await running.kill("SIGTERM");
    expect((await running.exited).code).toBe(0);
  }

  async kill9(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    await running?.kill9();
  }

  async status(): Promise<StatusJson> {
    return JSON.parse(ok(await this.cli(["status", "--json"]))) as StatusJson;
  }

  async cameras(site?: string): Promise<CameraJson[]> {
    return JSON.parse(ok(await this.cli(["cameras", "list", "--json", ...(site ? ["--site", site] : [])]))) as CameraJson[];
  }

  async import(file: string): Promise<string> {
    return ok(await this.cli(["cameras", "import", file]));
  }

  /** `vmtree audit verify --json`, with its exit code. */
  async auditVerify(site?: string): Promise<{ code: number; chains: ChainJson[] }> {
    const result = await this.cli(["audit", "verify", "--json", ...(site ? ["--site", site] : [])]);
    if (result.code !== 0 && result.code !== 1) throw new Error(`audit verify exited ${result.code}: ${result.stderr}`);
    return { code: result.code, chains: JSON.parse(result.stdout) as ChainJson[] };
  }

  /** `vmtree audit list --json ARGS`. */
  async auditList(args: string[] = []): Promise<AuditEntryJson[]> {
    return JSON.parse(ok(await this.cli(["audit", "list", "--json", ...args]))) as AuditEntryJson[];
  }

  /** Creates a join token for `childSite`. */
  async invite(childSite: string, ttl?: string): Promise<string> {
    return ok(await this.cli(["invite", "--site", childSite, ...(ttl ? ["--ttl", ttl] : [])])).trim();
  }
}

/** Asserts exit code 0 and returns stdout. */
export function ok(result: RunResult): string {
  if (result.code !== 0) throw new Error(`vmtree exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

/** `vmtree init` of a root in a new temp dir (not yet served). */
export async function initRoot(site: string, base?: string): Promise<TestNode> {
  const dir = join(base ?? (await makeTempDir("vmtree-")), site);
  ok(await runCli(["init", "--data", dir, "--site", site, "--listen", "127.0.0.1:0"]));
  return new TestNode(site, dir);
}

/** Invites and joins `site` under a served `parent` (the child is not yet served). */
export async function joinChild(parent: TestNode, site: string): Promise<TestNode> {
  const token = await parent.invite(site);
  const dir = join(parent.dir, "..", site);
  ok(await runCli(["join", "--data", dir, "--token", token, "--listen", "127.0.0.1:0"]));
  return new TestNode(site, dir);
}

/**
 * Polls `read` every 100 ms until `done` holds, and resolves with that value.
 * Rejects after `timeoutMs` with the last value seen.
 */
export async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last).slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Counts cameras per site. */
export function perSite(cameras: readonly CameraJson[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const camera of cameras) counts[camera.site] = (counts[camera.site] ?? 0) + 1;
  return counts;
}
