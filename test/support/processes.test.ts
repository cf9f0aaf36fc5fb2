import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import {
  KILL_GRACE_MS,
  OUTPUT_LIMIT,
  VMTREE_BIN,
  killAll,
  makeTempDir,
  removeTempDirs,
  runProcess,
  spawnProcess,
  type ManagedProcess,
} from "./processes.ts";

/** Keeps an inline script alive until it is killed. */
const IDLE = "setInterval(() => {}, 1000);";

function node(script: string): ManagedProcess {
  return spawnProcess(process.execPath, ["-e", script]);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(async () => {
  await killAll();
  await removeTempDirs();
});

describe("processes", () => {
  it("waitForLine - resolves with a line printed before or after the call, on stdout or stderr", async () => {
    const child = node(`console.log("starting"); setTimeout(() => console.error("listening on 127.0.0.1:4242"), 50); ${IDLE}`);

    const listening = await child.waitForLine(/listening on (\S+)/, 5_000);
    const starting = await child.waitForLine(/^start/, 1_000);

    expect(listening).toBe("listening on 127.0.0.1:4242");
    expect(starting).toBe("starting");
    expect(child.pid).toBeGreaterThan(0);
  }, 10_000);

  it("waitForLine - matches a final line without a newline", async () => {
    const child = node(`process.stdout.write("last words")`);

    await expect(child.waitForLine(/last/, 5_000)).resolves.toBe("last words");
  }, 10_000);

  it("waitForLine - rejects after the timeout, quoting the output", async () => {
    const child = node(`console.log("alive"); console.error("warming up"); ${IDLE}`);
    await child.waitForLine(/warming up/, 5_000);

    const failure = child.waitForLine(/never/, 200);

    await expect(failure).rejects.toMatchObject({ code: "deadline_exceeded" });
    await expect(failure).rejects.toThrow(/alive[\s\S]*warming up/);
  }, 10_000);

  it("waitForLine - rejects when the process exits before a match", async () => {
    const child = node(`console.log("bye"); process.exit(3)`);

    const failure = child.waitForLine(/never/, 5_000);

    await expect(failure).rejects.toMatchObject({ code: "unavailable" });
    await expect(failure).rejects.toThrow(/code 3[\s\S]*bye/);
    await expect(child.waitForLine(/still never/, 5_000)).rejects.toMatchObject({ code: "unavailable" });
    expect(await child.exited).toEqual({ code: 3, signal: null });
  }, 10_000);

  it("stdout - keeps only the last OUTPUT_LIMIT characters", async () => {
    const child = node(`process.stdout.write("a".repeat(${OUTPUT_LIMIT + 1000}) + "\\nend\\n")`);
    await child.waitForLine(/^end$/, 5_000);

    expect(child.stdout()).toHaveLength(OUTPUT_LIMIT);
    expect(child.stdout().endsWith("a\nend\n")).toBe(true);
  }, 10_000);

  it("kill - sends SIGTERM and resolves after the exit", async () => {
    const child = node(`console.log("ready"); ${IDLE}`);
    await child.waitForLine(/ready/, 5_000);

    await child.kill();

    expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
    await child.kill(); // already gone: resolves at once
  }, 10_000);

  it("kill - escalates to SIGKILL when the process ignores SIGTERM", async () => {
    const child = node(`process.on("SIGTERM", () => console.log("ignoring SIGTERM")); console.log("ready"); ${IDLE}`);
    await child.waitForLine(/ready/, 5_000);
    const startedAt = performance.now();

    await child.kill();

    expect(await child.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(child.stdout()).toContain("ignoring SIGTERM");
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(KILL_GRACE_MS - 100);
  }, KILL_GRACE_MS + 10_000);

  it("kill9 - kills a process that ignores SIGTERM at once", async () => {
    const child = node(`process.on("SIGTERM", () => {}); console.log("ready"); ${IDLE}`);
    await child.waitForLine(/ready/, 5_000);

    await child.kill9();

    expect(await child.exited).toEqual({ code: null, signal: "SIGKILL" });
  }, 10_000);

  it("killAll - kills every process still running", async () => {
    const children = [1, 2, 3].map(() => node(`console.log("ready"); ${IDLE}`));
    await Promise.all(children.map((child) => child.waitForLine(/ready/, 5_000)));

    await killAll();

    for (const child of children) {
      expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
      expect(isRunning(child.pid)).toBe(false);
    }
  }, 10_000);

  it("spawnProcess - reports a command that cannot start through exited and stderr", async () => {
    const child = spawnProcess(path.join(os.tmpdir(), "vmtree-no-such-command"), []);

    expect(await child.exited).toEqual({ code: null, signal: null });
    expect(child.pid).toBe(-1);
    expect(child.stderr()).toContain("ENOENT");
  }, 10_000);

  it("runProcess - feeds input and resolves with code and output", async () => {
    const script = `let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => { process.stdout.write(s.toUpperCase()); console.error("done"); process.exit(2); });`;

    const result = await runProcess(process.execPath, ["-e", script], { input: "hello" });

    expect(result).toEqual({ code: 2, stdout: "HELLO", stderr: "done\n" });
  }, 10_000);

  it("runProcess - reports death by a signal as 128 + its number", async () => {
    const result = await runProcess(process.execPath, ["-e", `process.kill(process.pid, "SIGKILL")`]);

    expect(result.code).toBe(128 + os.constants.signals.SIGKILL);
  }, 10_000);

  it("runProcess - kills the process and rejects with its output on timeout", async () => {
    const run = runProcess(process.execPath, ["-e", `console.log("stuck pid=" + process.pid); ${IDLE}`], { timeoutMs: 300 });

    const error: unknown = await run.catch((reason: unknown) => reason);

    expect(error).toMatchObject({ code: "deadline_exceeded" });
    const pid = Number(/stuck pid=(\d+)/.exec(String(error))?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(isRunning(pid)).toBe(false);
  }, 10_000);

  it("makeTempDir - creates a directory under the OS temp dir that removeTempDirs deletes", async () => {
    const dir = await makeTempDir("vmtree-test-");
    await writeFile(path.join(dir, "file.txt"), "x");

    expect(path.dirname(dir)).toBe(os.tmpdir());
    expect(path.basename(dir)).toMatch(/^vmtree-test-/);
    await removeTempDirs();
    expect(existsSync(dir)).toBe(false);
  });

  it("VMTREE_BIN - points at bin/vmtree.js in the repository root", async () => {
    const root = path.dirname(path.dirname(VMTREE_BIN));
    const manifest = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as { name?: unknown };

    expect(path.relative(root, VMTREE_BIN)).toBe(path.join("bin", "vmtree.js"));
    expect(manifest.name).toBe("vmtree");
  });
});
