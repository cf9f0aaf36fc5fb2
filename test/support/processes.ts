import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { VmtreeError } from "../../src/errors.ts";

/** The plain JS launcher of the vmtree CLI, resolved from this file's place in the repository. */
export const VMTREE_BIN = fileURLToPath(new URL("../../bin/vmtree.js", import.meta.url));

/** How much of each output stream a {@link ManagedProcess} keeps, in characters. */
export const OUTPUT_LIMIT = 256 * 1024;

/** How long `kill()` waits after its signal before sending SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/** How a process ended; both are null when it could not be spawned at all. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link spawnProcess} and {@link spawnNode}. */
export interface SpawnOptions {
  /** Added to (and overriding) this process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, which is then closed; without it stdin is `/dev/null`. */
  input?: string | Uint8Array;
  /** Characters kept of each output stream; default {@link OUTPUT_LIMIT}. */
  outputLimit?: number;
}

/** A child process whose output is captured and which {@link killAll} will clean up. */
export interface ManagedProcess {
  /** The child's pid, or -1 when it could not be spawned. */
  readonly pid: number;
  /** Resolves when the process has exited; never rejects. */
  readonly exited: Promise<ProcessExit>;
  /** The last {@link OUTPUT_LIMIT} characters written to stdout. */
  stdout(): string;
  /** The last {@link OUTPUT_LIMIT} characters written to stderr, plus a spawn failure if any. */
  stderr(): string;
  /**
   * Resolves with the first line of stdout or stderr, already printed or still to come,
   * that matches `pattern` (without its line ending). Rejects with `deadline_exceeded`
   * after `timeoutMs`, or with `unavailable` if the output ends first; either message
   * carries the captured output. Lines already dropped by the output limit are not searched.
   */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /**
   * Sends `signal` (default SIGTERM) and resolves once the process has exited, sending
   * SIGKILL if it is still running after {@link KILL_GRACE_MS}. Resolves at once if it already exited.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sends SIGKILL and resolves once the process has exited. */
  kill9(): Promise<void>;
}

/** The outcome of {@link runProcess} and {@link runCli}. */
export interface RunResult {
  /** The exit code, or 128 + the signal number if the process was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runProcess} and {@link runCli}. */
export interface RunOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_RUN_TIMEOUT_MS = 30_000;
/** How much output an error message quotes from each stream. */
const QUOTED_OUTPUT_CHARS = 8 * 1024;

const running = new Set<ManagedProcess>();
const tempDirs = new Set<string>();

interface LineWaiter {
  pattern: RegExp;
  resolve(line: string): void;
  reject(reason: VmtreeError): void;
}

/** One output stream: a bounded tail of its text, split into lines as it arrives. */
class CapturedStream {
  #text = "";
  #partialLine = "";
  #ended = false;
  readonly #onLine: (line: string) => void;
  readonly #limit: number;

  constructor(onLine: (line: string) => void, limit: number) {
    this.#onLine = onLine;
    this.#limit = limit;
  }

  get text(): string {
    return this.#text;
  }

  /** The complete lines still held, oldest first. */
  lines(): string[] {
    const lines = this.#text.split("\n").map(stripCarriageReturn);
    // The last element is the empty string after a final newline, or a line still being written.
    const last = lines.pop();
    if (this.#ended && last) lines.push(last);
    return lines;
  }

  append(chunk: string): void {
    this.#text = (this.#text + chunk).slice(-this.#limit);
    const parts = (this.#partialLine + chunk).split("\n");
    this.#partialLine = parts.pop() ?? "";
    for (const line of parts) this.#onLine(stripCarriageReturn(line));
  }

  /** Reports an unfinished last line as a line of its own once the stream has ended. */
  end(): void {
    this.#ended = true;
    if (this.#partialLine !== "") this.#onLine(stripCarriageReturn(this.#partialLine));
    this.#partialLine = "";
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function matches(pattern: RegExp, line: string): boolean {
  // A global or sticky pattern keeps lastIndex between calls; every line is a fresh search.
  pattern.lastIndex = 0;
  return pattern.test(line);
}

function clampTimer(ms: number): number {
  return Math.min(Math.max(0, ms), MAX_TIMER_MS);
}

function checkTimeout(name: string, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new VmtreeError("invalid_argument", `expected \`${name}\` to be a finite number >= 0, got \`${String(ms)}\` (${typeof ms})`);
  }
}

function quote(text: string): string {
  const tail = text.length > QUOTED_OUTPUT_CHARS ? `…${text.slice(-QUOTED_OUTPUT_CHARS)}` : text;
  return tail === "" ? "(empty)" : tail;
}

/** The {@link ManagedProcess} behind {@link spawnProcess}. */
class ChildHandle implements ManagedProcess {
  readonly pid: number;
  readonly exited: Promise<ProcessExit>;
  /** Resolves once the process has exited and both output streams are closed. */
  readonly outputClosed: Promise<void>;
  readonly #child: ChildProcess;
  readonly #description: string;
  readonly #out: CapturedStream;
  readonly #err: CapturedStream;
  readonly #waiters = new Set<LineWaiter>();
  #exit: ProcessExit | undefined;
  #closed = false;

  constructor(child: ChildProcess, description: string, outputLimit: number) {
    this.#child = child;
    this.#description = description;
    this.pid = child.pid ?? -1;
    this.#out = new CapturedStream((line) => this.#onLine(line), outputLimit);
    this.#err = new CapturedStream((line) => this.#onLine(line), outputLimit);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => this.#out.append(chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => this.#err.append(chunk));
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve(this.#exited({ code, signal })));
      child.on("error", (error) => {
        // Without a pid no process exists and no 'exit' will follow. With one, the error is a
        // failed kill() of a process that is already gone, which its 'exit' reports anyway.
        if (this.pid !== -1) return;
        this.#err.append(`${error.message}\n`);
        resolve(this.#exited({ code: null, signal: null }));
      });
    });
    this.outputClosed = new Promise((resolve) => child.once("close", () => resolve(this.#onClose())));
  }

  stdout(): string {
    return this.#out.text;
  }

  stderr(): string {
    return this.#err.text;
  }

  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    checkTimeout("timeoutMs", timeoutMs);
    const seen = [...this.#out.lines(), ...this.#err.lines()].find((line) => matches(pattern, line));
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#closed) return Promise.reject(this.#endedBeforeMatch(pattern));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(this.failure("deadline_exceeded", `no line matching ${String(pattern)} within ${timeoutMs} ms`));
      }, clampTimer(timeoutMs));
      const waiter: LineWaiter = {
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (reason) => {
          clearTimeout(timer);
          reject(reason);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.#exit !== undefined) return;
    this.#child.kill(signal);
    const escalation = setTimeout(() => this.#child.kill("SIGKILL"), KILL_GRACE_MS);
    try {
      await this.exited;
    } finally {
      clearTimeout(escalation);
    }
  }

  kill9(): Promise<void> {
    return this.kill("SIGKILL");
  }

  /** An error naming this process and quoting its output. */
  failure(code: "deadline_exceeded" | "unavailable", message: string): VmtreeError {
    return new VmtreeError(
      code,
      `${this.#description} (pid ${this.pid}): ${message}\n--- stdout ---\n${quote(this.stdout())}\n--- stderr ---\n${quote(this.stderr())}`,
    );
  }

  #endedBeforeMatch(pattern: RegExp): VmtreeError {
    const how = this.#exit?.signal ?? `code ${String(this.#exit?.code ?? null)}`;
    return this.failure("unavailable", `exited (${how}) before printing a line matching ${String(pattern)}`);
  }

  #onLine(line: string): void {
    for (const waiter of this.#waiters) {
      if (!matches(waiter.pattern, line)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(line);
    }
  }

  #exited(exit: ProcessExit): ProcessExit {
    this.#exit = exit;
    running.delete(this);
    return exit;
  }

  #onClose(): void {
    this.#out.end();
    this.#err.end();
    this.#closed = true;
    for (const waiter of this.#waiters) waiter.reject(this.#endedBeforeMatch(waiter.pattern));
    this.#waiters.clear();
  }
}

/**
 * Spawns `command` with `args`, capturing its output, and registers it for {@link killAll}.
 * Never throws for a command that cannot be started: `exited` then resolves with both
 * fields null and `stderr()` holds the reason.
 */
export function spawnProcess(command: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  return startChild(command, args, opts);
}

function startChild(command: string, args: readonly string[], opts: SpawnOptions): ChildHandle {
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (opts.input !== undefined) {
    // EPIPE when the child exits without reading its input; the exit status tells the story.
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input);
  }
  const handle = new ChildHandle(child, [path.basename(command), ...args].join(" "), opts.outputLimit ?? OUTPUT_LIMIT);
  if (handle.pid !== -1) running.add(handle);
  return handle;
}

/**
 * Spawns the vmtree CLI (`node bin/vmtree.js ...args`) with the current Node binary.
 * See {@link spawnProcess}.
 */
export function spawnNode(args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  return spawnProcess(process.execPath, [VMTREE_BIN, ...args], opts);
}

/**
 * Runs `command` to completion and resolves with its exit code and output. Rejects with
 * `deadline_exceeded`, quoting the output, if it runs longer than `timeoutMs` (default 30 s);
 * the process is then killed. Rejects with `invalid_argument` for a bad `timeoutMs`.
 */
export async function runProcess(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  checkTimeout("timeoutMs", timeoutMs);
  // A command run to completion is judged by its whole output (a JSON listing, say).
  const child = startChild(command, args, { env: opts.env, cwd: opts.cwd, input: opts.input, outputLimit: Infinity });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), clampTimer(timeoutMs));
  });
  try {
    if ((await Promise.race([child.outputClosed, timedOut])) === "timeout") {
      await child.kill();
      throw child.failure("deadline_exceeded", `ran longer than ${timeoutMs} ms and was killed`);
    }
  } finally {
    clearTimeout(timer);
  }
  return { code: exitCode(await child.exited), stdout: child.stdout(), stderr: child.stderr() };
}

function exitCode(exit: ProcessExit): number {
  if (exit.code !== null) return exit.code;
  if (exit.signal !== null) return 128 + os.constants.signals[exit.signal];
  return 127; // could not be spawned, as a shell would report it
}

/** Runs the vmtree CLI to completion; see {@link runProcess}. */
export function runCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(process.execPath, [VMTREE_BIN, ...args], opts);
}

/**
 * Kills every process spawned here that is still running (SIGTERM, then SIGKILL after
 * {@link KILL_GRACE_MS}) and resolves once all have exited. Meant for `afterEach`.
 */
export async function killAll(): Promise<void> {
  await Promise.allSettled([...running].map((child) => child.kill()));
}

/** Creates a fresh directory under `os.tmpdir()` named `prefix` plus random characters, removed by {@link removeTempDirs}. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes every directory made by {@link makeTempDir}, with its contents; resolves when all are gone. */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...tempDirs];
  tempDirs.clear();
  await Promise.allSettled(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

// A test run that dies without its afterAll must not leave vmtree nodes holding ports.
process.once("exit", () => {
  for (const child of running) void child.kill9();
});
