import { execFile } from "node:child_process";
import { REPO_ROOT, VMTREE_BIN } from "./paths.ts";

const DEFAULT_TIMEOUT_MS = 20_000;

/** A `vmtree` command that did not exit 0, with everything needed to reproduce it. */
export class VmtreeCommandError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | string | null,
    readonly stderr: string,
    readonly stdout = "",
  ) {
    super(`\`vmtree ${args.join(" ")}\` failed (exit ${exitCode ?? "?"})${stderr.trim() ? `: ${stderr.trim()}` : ""}`);
    this.name = "VmtreeCommandError";
  }
}

/**
 * Runs `vmtree ARGS` as its own process (from the repository root) and resolves with its
 * stdout once it exits 0. Rejects with {@link VmtreeCommandError} on another exit code, on
 * the timeout, or when `signal` aborts (the process is killed then).
 */
export function runVmtree(args: readonly string[], signal: AbortSignal, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [VMTREE_BIN, ...args],
      { cwd: REPO_ROOT, signal, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        if (signal.aborted) return reject(signal.reason);
        const exit = error.killed ? `killed after ${timeoutMs} ms` : (error.code ?? null);
        reject(new VmtreeCommandError(args, exit, stderr, stdout));
      },
    );
  });
}
