/**
 * Audit catch-up benchmark (issue: audit logs, R-6.4).
 *
 * A site that was cut off holds a backlog of audit entries; when its link returns they
 * reach its parent. For each run this measures, on real node processes over mutual TLS
 * on 127.0.0.1:
 * - the catch-up rate: backlog entries stored by the parent per second, from the moment
 *   the site's process starts until the parent reports them all received;
 * - the baseline: the same entries written to a fresh LevelDB in plain synced batches of
 *   the link's batch size, the floor any durable receiver pays, measured in the same run;
 * - the parent's peak RSS (VmHWM) during catch-up, and its RSS before it.
 *
 * Usage: npm run bench:audit -- [--entries 1000000] [--runs 3] [--small 250000]
 * `--small` adds one run with a smaller backlog, to show whether the parent's memory grows
 * with the backlog. Figures are printed and saved to bench/results/audit-catchup.json.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Level } from "level";
import type { AuditEntry } from "../src/gen/vmtree/v1/audit.ts";
import { connectAdmin } from "../src/node/admin-client.ts";
import { NodeStore } from "../src/store/node-store.ts";
import { appendBacklog } from "../test/support/audit-backlog.ts";
import { killAll, makeTempDir, removeTempDirs } from "../test/support/processes.ts";
import { initRoot, joinChild, type TestNode } from "../test/support/tree.ts";
import { DEFAULT_AUDIT_BATCH } from "../src/link/uplink.ts";
import { median, positive, round } from "./figures.ts";

/** The uplink's audit batch size: the baseline writes in batches of the same size. */
const LINK_BATCH = DEFAULT_AUDIT_BATCH;
const POLL_MS = 200;
const CATCH_UP_TIMEOUT_MS = 15 * 60_000;

interface RunFigures {
  entries: number;
  catchUpSeconds: number;
  entriesPerSecond: number;
  baselineSeconds: number;
  baselineEntriesPerSecond: number;
  /** Catch-up rate over baseline rate. */
  ratioToBaseline: number;
  parentRssBeforeMb: number;
  parentPeakRssMb: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { entries: { type: "string", default: "1000000" }, runs: { type: "string", default: "3" }, small: { type: "string", default: "250000" } },
  });
  const entries = positive("entries", values.entries);
  const runs = positive("runs", values.runs);
  const small = values.small === "0" ? 0 : positive("small", values.small);

  const results: RunFigures[] = [];
  try {
    for (let i = 1; i <= runs; i++) {
      const figures = await oneRun(entries);
      print(`run ${i}/${runs}`, figures);
      results.push(figures);
    }
    const smallRun = small > 0 ? await oneRun(small) : undefined;
    if (smallRun) print("smaller backlog", smallRun);

    const summary = {
      benchmark: "audit-catchup",
      date: new Date().toISOString(),
      node: process.version,
      entries,
      runs: results,
      median: {
        entriesPerSecond: median(results.map((r) => r.entriesPerSecond)),
        baselineEntriesPerSecond: median(results.map((r) => r.baselineEntriesPerSecond)),
        ratioToBaseline: median(results.map((r) => r.ratioToBaseline)),
        parentPeakRssMb: median(results.map((r) => r.parentPeakRssMb)),
      },
      smallerBacklog: smallRun ?? null,
    };
    console.log(
      `\nmedian of ${runs} runs, ${entries} entries: ${summary.median.entriesPerSecond} entries/s ` +
        `(${summary.median.ratioToBaseline}× the plain LevelDB batch write, ${summary.median.baselineEntriesPerSecond} entries/s); ` +
        `parent peak RSS ${summary.median.parentPeakRssMb} MB` +
        (smallRun ? `; with ${smallRun.entries} entries: peak RSS ${smallRun.parentPeakRssMb} MB` : ""),
    );
    const out = new URL("./results/", import.meta.url);
    await mkdir(out, { recursive: true });
    await writeFile(new URL("audit-catchup.json", out), JSON.stringify(summary, null, 2) + "\n");
    console.log("saved bench/results/audit-catchup.json");
  } finally {
    await killAll();
    await removeTempDirs();
  }
}

async function oneRun(count: number): Promise<RunFigures> {
  const base = await makeTempDir("vmtree-bench-");
  const kz = await initRoot("kz", base);
  await kz.serve();
  const ast = await joinChild(kz, "kz.ast");
  await appendBacklog(ast.dir, ast.site, 1, count);
  const baselineSeconds = await baselineWrite(ast.dir, join(base, "baseline"));

  const parentPid = kz.process!.pid;
  const rssBefore = await memoryMb(parentPid, "VmRSS");
  const started = performance.now();
  await ast.serve();
  await waitForReceived(kz, ast.site, count);
  const catchUpSeconds = (performance.now() - started) / 1000;
  const peak = await memoryMb(parentPid, "VmHWM");
  await Promise.all([ast.stop(), kz.stop()]);

  const entriesPerSecond = Math.round(count / catchUpSeconds);
  const baselineEntriesPerSecond = Math.round(count / baselineSeconds);
  return {
    entries: count,
    catchUpSeconds: round(catchUpSeconds),
    entriesPerSecond,
    baselineSeconds: round(baselineSeconds),
    baselineEntriesPerSecond,
    ratioToBaseline: round(entriesPerSecond / baselineEntriesPerSecond),
    parentRssBeforeMb: rssBefore,
    parentPeakRssMb: peak,
  };
}

/**
 * Copies the site's backlog into a fresh LevelDB in synced batches of the link's size,
 * with the parent's keys and encoding, and returns the seconds spent in the writes alone
 * (reading the source is not counted).
 */
async function baselineWrite(siteDir: string, location: string): Promise<number> {
  const source = await NodeStore.open(join(siteDir, "db"));
  const target = new Level<string, AuditEntry>(location, { valueEncoding: "json" });
  let writing = 0;
  try {
    const entries = source.section<AuditEntry>("audit-entry");
    const sink = target.sublevel<string, AuditEntry>("audit-entry", { valueEncoding: "json" });
    let batch: { type: "put"; key: string; value: AuditEntry }[] = [];
    const flush = async () => {
      const t = performance.now();
      await target.batch(batch.map((op) => ({ ...op, sublevel: sink })), { sync: true });
      writing += performance.now() - t;
      batch = [];
    };
    for await (const [key, value] of entries.iterator()) {
      batch.push({ type: "put", key, value });
      if (batch.length === LINK_BATCH) await flush();
    }
    if (batch.length > 0) await flush();
  } finally {
    await Promise.allSettled([source.close(), target.close()]);
  }
  return writing / 1000;
}

/** Polls the parent's status until it has received `count` entries from `site` in this process's life. */
async function waitForReceived(parent: TestNode, site: string, count: number): Promise<void> {
  const admin = await connectAdmin(parent.dir, "user:bench");
  try {
    const deadline = Date.now() + CATCH_UP_TIMEOUT_MS;
    for (;;) {
      const status = await admin.getStatus({});
      const received = status.children.find((c) => c.site === site)?.audit_received ?? 0;
      if (received >= count) return;
      if (Date.now() > deadline) throw new Error(`catch-up did not finish: ${received} of ${count} entries after ${CATCH_UP_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    await admin.close();
  }
}

/** A field of /proc/PID/status in MB. */
async function memoryMb(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Math.round(kb / 1024);
}

function print(label: string, r: RunFigures): void {
  console.log(
    `${label}: ${r.entries} entries caught up in ${r.catchUpSeconds} s = ${r.entriesPerSecond} entries/s; ` +
      `plain LevelDB batch write ${r.baselineEntriesPerSecond} entries/s (ratio ${r.ratioToBaseline}); ` +
      `parent RSS ${r.parentRssBeforeMb} MB before, peak ${r.parentPeakRssMb} MB`,
  );
}


await main();
