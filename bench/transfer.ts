/**
 * Fragment transfer benchmark (issue 5: video fragments, R-6.7, R-6.9, R-6.19).
 *
 * `--count` random files of `--size` bytes are registered at a site kz.ast (as a recorder
 * would, through its admin API) and requested from its parent kz, the root; the figure is
 * the time from the request until kz holds all of them, each checked against its SHA-256
 * by kz on arrival and again by this bench afterwards. kz and kz.ast are real `vmtree serve`
 * processes on 127.0.0.1, enrolled for real, linked over mutual TLS; every scenario gets a
 * fresh pair, so that each starts with an empty parent and fresh processes (peak RSS is
 * theirs alone). kz.ast sends `--transfers` fragments at once (its `transferConcurrency`;
 * the product's default is 8), as many as rclone's `--transfers` below. Per run:
 * (a) uncapped, kz.ast dialling kz directly: goodput, and a plain Node TLS socket (mutual
 *     TLS with the same node certificates, the receiver a process of its own writing the
 *     bytes to a file without fsync) copying the same files, in the same run;
 * (b) with `bandwidth` = `--cap` in kz.ast's node.json, through a TCP proxy on loopback
 *     (no delay, only to count the bytes) and through one adding 25 ms each way (50 ms RTT):
 *     goodput ÷ cap, and the highest rate over any one second of the proxy's upstream byte
 *     count (everything on the wire: TLS, HTTP/2, the sync streams) ÷ cap, sampled every 100 ms;
 * (c) the 50 ms case again, with kz.ast killed (SIGKILL) once a quarter of the bytes went
 *     through, and started again: bytes sent again per fragment that was in flight, as the
 *     restarted node counts them (its jobs' `resent`), and the bytes the proxy delivered to
 *     kz beyond the clean 50 ms run's (bytes the kill caught in the proxy's delay queue were
 *     never delivered, so they are not in it: it counts what arrived twice, not what was sent);
 * (d) peak RSS (VmHWM) of the sending kz.ast and the receiving kz in every scenario;
 *     once at the end, the uncapped scenario with fragments a quarter the size, to show
 *     whether memory grows with fragment size;
 * (e) rclone (Debian's) copying the same files over WebDAV (`rclone serve webdav` on
 *     127.0.0.1, plain HTTP) through the same 25 ms proxy with `--transfers` as above and
 *     `--bwlimit` set to the cap in bytes per second (rclone's unit), clean and with
 *     rclone killed (SIGKILL) after a quarter and started again. `--skip-rclone` leaves it out.
 *
 * Goodput counts fragment bytes only; the cap counts every byte vmtree's limiter passes
 * (chunk framing included) and rclone's file bytes. Figures are medians over the runs; each
 * run records the machine's load average, since other work on it shows in every figure.
 *
 * Usage: npm run bench:transfer -- [--runs 3] [--count 16] [--size 64MiB] [--cap 200Mbit] [--transfers 16] [--skip-rclone]
 * Figures are printed and saved to bench/results/transfer.json (not committed).
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { checkServerIdentity, connect } from "node:tls";
import { parseArgs } from "node:util";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { siteDnsName } from "../src/pki/site-id.ts";
import { formatBandwidth, parseBandwidth } from "../src/transfer/bandwidth.ts";
import { sha256Of } from "../src/transfer/fragment-archive.ts";
import { CHUNK_BYTES } from "../src/transfer/fragment-upload.ts";
import { killAll, makeTempDir, removeTempDirs, spawnProcess } from "../test/support/processes.ts";
import { startTcpProxy, type TcpProxy } from "../test/support/tcp-proxy.ts";
import { initRoot, joinChild, type TestNode } from "../test/support/tree.ts";
import { median, positive, round } from "./figures.ts";

const ACTOR = "user:bench";
const ROOT = "kz";
const SITE = "kz.ast";
const CAMERA = "ast-cam-001";
const WAN_DELAY_MS = 25;
const SAMPLE_MS = 100;
const POLL_MS = 50;
/** Where the kill scenarios kill the sender: after this share of the bytes went through the proxy. */
const KILL_AT = 0.25;
const CONNECT_TIMEOUT_MS = 30_000;
/** USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;
const TLS_RECEIVER = new URL("./tls-receiver.ts", import.meta.url).pathname;

interface Options {
  runs: number;
  count: number;
  size: number;
  cap: number;
  /** Fragments (files) sent at once: kz.ast's `transferConcurrency` and rclone's `--transfers`. */
  transfers: number;
  skipRclone: boolean;
}

interface Recording {
  path: string;
  sha256: string;
}

/** One transfer of all the files. */
interface Transfer {
  seconds: number;
  goodputMbit: number;
  /** Goodput ÷ cap; absent uncapped. */
  goodputOverCap?: number;
  /** Highest one-second rate on the wire ÷ cap; absent without a proxy. */
  peakOverCap?: number;
  /** Bytes the proxy delivered upstream, all connections; absent without a proxy. */
  upstreamBytes?: number;
  /** From the start until the proxy carried the first 64 KiB; absent without a proxy. */
  leadSeconds?: number;
  /** From the proxy carrying 99.9 % of its bytes until the end; absent without a proxy. */
  tailSeconds?: number;
  senderPeakRssMb?: number;
  receiverPeakRssMb?: number;
  /** RSS of the sending and the receiving node, connected and idle, just before the request. */
  senderIdleRssMb?: number;
  receiverIdleRssMb?: number;
  /** CPU seconds (user + system) the sending and the receiving node spent during the transfer. */
  senderCpuSeconds?: number;
  receiverCpuSeconds?: number;
}

interface Resend {
  /** Fragments (files) partly sent when the sender was killed. */
  inFlight: number;
  /** Bytes the proxy delivered beyond the clean run's, per in-flight fragment: what arrived twice. */
  proxyExtraPerInFlight: number;
  /** What the restarted vmtree node counts as sent again, per in-flight fragment (vmtree only). */
  countedPerInFlight?: number;
  /** The same, in chunks of {@link CHUNK_BYTES} (vmtree only). */
  countedChunksPerInFlight?: number;
  transfer: Transfer;
}

interface RunFigures {
  /** The machine's 1-minute load average at the start and at the end of the run. */
  load: [number, number];
  uncapped: Transfer;
  tls: { seconds: number; goodputMbit: number };
  uncappedOverTls: number;
  loopbackCapped: Transfer;
  wanCapped: Transfer;
  wanKill: Resend;
  rclone?: { wan: Transfer; kill: Resend };
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions();
  } catch (error) {
    console.error(`bench:transfer: ${(error as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const total = options.count * options.size;
  try {
    const filesDir = await makeTempDir("vmtree-bench-transfer-files-");
    const files = await writeRecordings(filesDir, options.count, options.size);
    const rclone = options.skipRclone ? undefined : await rcloneVersion();
    console.log(
      `${options.count} fragments × ${options.size} bytes = ${total} bytes of random data; cap ${formatBandwidth(options.cap)}; ` +
        `${options.runs} runs; ${rclone ?? (options.skipRclone ? "rclone skipped" : "rclone unavailable")}`,
    );
    const runs: RunFigures[] = [];
    for (let i = 1; i <= options.runs; i++) {
      const run = await oneRun(options, files, filesDir, rclone !== undefined);
      runs.push(run);
      printRun(`run ${i}/${options.runs}`, run, options);
    }
    const smallSize = Math.max(1024 * 1024, Math.floor(options.size / 4));
    const smallFiles = await writeRecordings(await makeTempDir("vmtree-bench-transfer-small-"), options.count, smallSize);
    const small = await vmtreeTransfer(smallFiles, smallSize, { transfers: options.transfers });
    console.log(`smaller fragments (${options.count} × ${smallSize} bytes, uncapped): ${describeTransfer(small.transfer)}`);

    const summary = {
      benchmark: "transfer",
      date: new Date().toISOString(),
      node: process.version,
      rclone: rclone ?? (options.skipRclone ? "skipped" : "unavailable"),
      options: { ...options, capText: formatBandwidth(options.cap), chunkBytes: CHUNK_BYTES, wanDelayMsEachWay: WAN_DELAY_MS, killAt: KILL_AT },
      runs,
      median: medians(runs),
      smallerFragments: { size: smallSize, ...small.transfer },
    };
    printTable(runs, summary.median);
    const out = new URL("./results/", import.meta.url);
    await mkdir(out, { recursive: true });
    await writeFile(new URL("transfer.json", out), JSON.stringify(summary, null, 2) + "\n");
    console.log("saved bench/results/transfer.json");
  } finally {
    await killAll();
    await removeTempDirs();
  }
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "3" },
      count: { type: "string", default: "16" },
      size: { type: "string", default: "64MiB" },
      cap: { type: "string", default: "200Mbit" },
      transfers: { type: "string", default: "16" },
      "skip-rclone": { type: "boolean", default: false },
    },
  });
  const cap = parseBandwidth(values.cap, "--cap");
  if (!Number.isFinite(cap)) throw new Error(`expected --cap to be a rate like 200Mbit, got \`${values.cap}\``);
  const count = positive("count", values.count);
  if (count > 1000) throw new Error(`expected --count to be at most 1000, got \`${values.count}\``);
  const transfers = positive("transfers", values.transfers);
  if (transfers > 64) throw new Error(`expected --transfers to be at most 64 (a node's transferConcurrency), got \`${values.transfers}\``);
  return { runs: positive("runs", values.runs), count, size: parseSize(values.size), cap, transfers, skipRclone: values["skip-rclone"] };
}

const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** `64MiB`, `512KiB`, `1GiB` or a number of bytes. */
function parseSize(text: string): number {
  const match = /^(\d{1,12})(B|KiB|MiB|GiB)?$/.exec(text);
  const bytes = match ? Number(match[1]) * SIZE_UNITS[match[2] ?? ""]! : NaN;
  if (!(bytes >= 1) || bytes > 4 * 1024 ** 3) throw new Error(`expected --size to be 1 byte to 4GiB, like 64MiB, 512KiB or 1000000, got \`${text}\``);
  return bytes;
}

/** Random files, written in 1 MiB pieces so that their size does not decide the bench's memory. */
async function writeRecordings(dir: string, count: number, size: number): Promise<Recording[]> {
  const files: Recording[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(dir, `ast-cam-001_${String(i).padStart(4, "0")}.mp4`);
    const file = await open(path, "w");
    try {
      for (let written = 0; written < size; ) {
        const piece = randomBytes(Math.min(1024 * 1024, size - written));
        await file.write(piece);
        written += piece.length;
      }
    } finally {
      await file.close();
    }
    files.push({ path, sha256: await sha256Of(path) });
  }
  return files;
}

async function oneRun(options: Options, files: Recording[], filesDir: string, withRclone: boolean): Promise<RunFigures> {
  const { size, cap, transfers } = options;
  const loadBefore = round(loadavg()[0]!);
  const uncapped = await vmtreeTransfer(files, size, { transfers, tlsBaseline: true });
  const tls = uncapped.tls!;
  const loopbackCapped = (await vmtreeTransfer(files, size, { transfers, cap, delayMs: 0 })).transfer;
  const wanCapped = (await vmtreeTransfer(files, size, { transfers, cap, delayMs: WAN_DELAY_MS })).transfer;
  const killed = await vmtreeTransfer(files, size, { transfers, cap, delayMs: WAN_DELAY_MS, kill: true });
  const wanKill = resendFigures(killed.transfer, wanCapped, killed.inFlight!, killed.counted);
  const run: RunFigures = {
    load: [loadBefore, 0],
    uncapped: uncapped.transfer,
    tls,
    uncappedOverTls: round(uncapped.transfer.goodputMbit / tls.goodputMbit),
    loopbackCapped,
    wanCapped,
    wanKill,
  };
  if (withRclone) {
    const wan = await rcloneTransfer(files, filesDir, size, cap, transfers, false);
    const kill = await rcloneTransfer(files, filesDir, size, cap, transfers, true);
    run.rclone = { wan: wan.transfer, kill: resendFigures(kill.transfer, wan.transfer, kill.inFlight!) };
  }
  run.load[1] = round(loadavg()[0]!);
  return run;
}

function resendFigures(killed: Transfer, clean: Transfer, inFlight: number, counted?: number): Resend {
  const extra = (killed.upstreamBytes ?? 0) - (clean.upstreamBytes ?? 0);
  const per = (bytes: number) => (inFlight > 0 ? Math.round(bytes / inFlight) : 0);
  return {
    inFlight,
    proxyExtraPerInFlight: per(extra),
    ...(counted === undefined ? {} : { countedPerInFlight: per(counted), countedChunksPerInFlight: round(per(counted) / CHUNK_BYTES) }),
    transfer: killed,
  };
}

interface ScenarioOptions {
  /** kz.ast's `transferConcurrency`. */
  transfers: number;
  /** Bits per second, written as kz.ast's `bandwidth`; uncapped without. */
  cap?: number;
  /** Dials kz through a proxy adding this delay each way; directly without. */
  delayMs?: number;
  /** Kills kz.ast after {@link KILL_AT} of the bytes, then starts it again. */
  kill?: boolean;
  /** Also copies the files over a plain TLS socket with the pair's certificates. */
  tlsBaseline?: boolean;
}

/** One scenario on a fresh kz ← kz.ast pair. */
async function vmtreeTransfer(files: Recording[], size: number, scenario: ScenarioOptions) {
  const base = await makeTempDir("vmtree-bench-transfer-");
  const total = files.length * size;
  let proxy: TcpProxy | undefined;
  const admins: NodeAdmin[] = [];
  const adminOf = async (node: TestNode) => {
    const admin = await connectAdmin(node.dir, ACTOR);
    admins.push(admin);
    return admin;
  };
  try {
    const root = await initRoot(ROOT, base);
    await root.serve();
    const site = await joinChild(root, SITE);
    const configFile = join(site.dir, "node.json");
    const config = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
    const bandwidth = scenario.cap === undefined ? {} : { bandwidth: `${scenario.cap}bit` };
    await writeFile(configFile, JSON.stringify({ ...config, ...bandwidth, transferConcurrency: scenario.transfers }, null, 2) + "\n");
    if (scenario.delayMs !== undefined) proxy = await startTcpProxy({ target: hostPort(root.address), delayMs: scenario.delayMs });
    const serveSite = async () => {
      await site.serve(proxy ? ["--parent", proxy.address] : []);
      const admin = await adminOf(site);
      await until(async () => (await admin.getStatus({})).parent?.state === "connected", CONNECT_TIMEOUT_MS, `${SITE} connected to ${ROOT}`);
      return admin;
    };
    let siteAdmin = await serveSite();
    const rootAdmin = await adminOf(root);
    const startMs = Date.now() - 3_600_000;
    const ids: string[] = [];
    for (const [i, file] of files.entries()) {
      const { fragment } = await siteAdmin.addFragment({ camera_id: CAMERA, file_path: file.path, start_ms: startMs + i * 60_000, end_ms: startMs + i * 60_000 + 59_999, incident: false });
      if (fragment?.sha256 !== file.sha256) throw new Error(`${file.path} registered with SHA-256 ${fragment?.sha256}, expected ${file.sha256}`);
      ids.push(fragment.id);
    }
    const { cap_bits_per_second } = await siteAdmin.listTransfers({});
    if (cap_bits_per_second !== (scenario.cap ?? 0)) throw new Error(`${SITE} runs with a cap of ${cap_bits_per_second} bit/s, expected ${scenario.cap ?? 0}`);

    const sampler = proxy ? sampleUpstream(proxy) : undefined;
    const senderIdle = await memoryMb(site.process!.pid, "VmRSS");
    const receiverIdle = await memoryMb(root.process!.pid, "VmRSS");
    let senderCpu = -(await cpuSeconds(site.process!.pid));
    let receiverCpu = -(await cpuSeconds(root.process!.pid));
    const started = performance.now();
    await rootAdmin.requestFragments({ site: SITE, camera_id: CAMERA, from_ms: startMs, to_ms: startMs + files.length * 60_000, reason: "bench", requested_by: ACTOR });
    let inFlight: number | undefined;
    let killedSenderPeak = 0;
    if (scenario.kill) {
      if (!proxy) throw new Error("the kill scenario counts its bytes on a proxy");
      const p = proxy;
      await until(async () => p.bytesUpstream >= total * KILL_AT, timeoutFor(total, scenario.cap), "a quarter of the bytes sent");
      const sending = (await siteAdmin.listTransfers({})).transfers.filter((t) => t.direction === "up" && t.bytes_done > 0 && t.bytes_done < t.total);
      inFlight = sending.length;
      killedSenderPeak = await memoryMb(site.process!.pid, "VmHWM");
      senderCpu += await cpuSeconds(site.process!.pid);
      await siteAdmin.close();
      await site.kill9();
      siteAdmin = await serveSite();
      senderCpu -= await cpuSeconds(site.process!.pid);
    }
    await until(async () => (await rootAdmin.listFragments({ site: SITE })).fragments.length >= files.length, timeoutFor(total, scenario.cap), `all ${files.length} fragments at ${ROOT}`);
    const seconds = (performance.now() - started) / 1000;
    const samples = sampler?.stop();
    senderCpu += await cpuSeconds(site.process!.pid);
    receiverCpu += await cpuSeconds(root.process!.pid);
    const senderPeak = Math.max(killedSenderPeak, await memoryMb(site.process!.pid, "VmHWM"));
    const receiverPeak = await memoryMb(root.process!.pid, "VmHWM");
    const counted = scenario.kill
      ? (await siteAdmin.listTransfers({})).transfers.filter((t) => t.direction === "up").reduce((sum, t) => sum + t.resent, 0)
      : undefined;

    for (const admin of admins.splice(0)) await admin.close();
    await site.stop();
    await root.stop();
    await verify(files.map((file, i) => ({ path: join(root.dir, "fragments", ids[i]!), sha256: file.sha256 })));
    const transfer = figures(total, seconds, scenario.cap, samples, proxy?.bytesUpstream);
    transfer.senderPeakRssMb = senderPeak;
    transfer.receiverPeakRssMb = receiverPeak;
    transfer.senderIdleRssMb = senderIdle;
    transfer.receiverIdleRssMb = receiverIdle;
    transfer.senderCpuSeconds = round(senderCpu);
    transfer.receiverCpuSeconds = round(receiverCpu);
    const tls = scenario.tlsBaseline ? await tlsCopy(files, base, root.dir, site.dir, total) : undefined;
    return { transfer, inFlight, counted, tls };
  } finally {
    for (const admin of admins) await admin.close();
    await proxy?.close();
    await killAll();
    await rm(base, { recursive: true, force: true });
  }
}

/** The goodput figures of a transfer of `total` bytes. */
function figures(total: number, seconds: number, cap: number | undefined, samples: Sample[] | undefined, upstreamBytes: number | undefined): Transfer {
  const goodput = (total * 8) / seconds;
  const transfer: Transfer = { seconds: round(seconds), goodputMbit: round(goodput / 1e6) };
  if (cap !== undefined) transfer.goodputOverCap = round3(goodput / cap);
  const peak = samples ? peakRate(samples) : undefined;
  if (cap !== undefined && peak !== undefined) transfer.peakOverCap = round3(peak / cap);
  if (upstreamBytes !== undefined) transfer.upstreamBytes = upstreamBytes;
  if (samples) Object.assign(transfer, leadAndTail(samples));
  return transfer;
}

interface Sample {
  ms: number;
  bytes: number;
}

/** Samples the proxy's upstream byte count every {@link SAMPLE_MS} until stopped. */
function sampleUpstream(proxy: TcpProxy) {
  const samples: Sample[] = [{ ms: performance.now(), bytes: proxy.bytesUpstream }];
  const timer = setInterval(() => samples.push({ ms: performance.now(), bytes: proxy.bytesUpstream }), SAMPLE_MS);
  return {
    stop(): Sample[] {
      clearInterval(timer);
      samples.push({ ms: performance.now(), bytes: proxy.bytesUpstream });
      return samples;
    },
  };
}

/**
 * The highest rate in bits per second over any span of at least one second between two
 * samples; undefined for a transfer shorter than that.
 */
function peakRate(samples: readonly Sample[]): number | undefined {
  let peak: number | undefined;
  let from = 0;
  for (let to = 1; to < samples.length; to++) {
    // The shortest span ending at `to` that still covers a second.
    while (from + 1 < to && samples[to]!.ms - samples[from + 1]!.ms >= 1000) from++;
    const span = samples[to]!.ms - samples[from]!.ms;
    if (span < 1000) continue;
    peak = Math.max(peak ?? 0, ((samples[to]!.bytes - samples[from]!.bytes) * 8 * 1000) / span);
  }
  return peak;
}

/** How long the wire stayed quiet after the start and before the end (to the sampling's 100 ms). */
function leadAndTail(samples: readonly Sample[]): { leadSeconds: number; tailSeconds: number } {
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const moving = samples.find((s) => s.bytes - first.bytes >= 64 * 1024) ?? last;
  const nearlyAll = samples.find((s) => s.bytes - first.bytes >= (last.bytes - first.bytes) * 0.999) ?? last;
  return { leadSeconds: round((moving.ms - first.ms) / 1000), tailSeconds: round((last.ms - nearlyAll.ms) / 1000) };
}

/** Copies the files over one mutual-TLS socket, kz.ast's certificate to kz's, to a receiver process. */
async function tlsCopy(files: Recording[], base: string, rootDir: string, siteDir: string, total: number): Promise<{ seconds: number; goodputMbit: number }> {
  const tlsFile = (dir: string, name: string) => join(dir, "tls", name);
  const receiver = spawnProcess(process.execPath, ["--import", "tsx", TLS_RECEIVER, tlsFile(rootDir, "node.key"), tlsFile(rootDir, "node.pem"), tlsFile(rootDir, "root-ca.pem"), join(base, "tls-copy.bin")]);
  const port = Number(/listening on (\d+)/.exec(await receiver.waitForLine(/listening on \d+/, 30_000))![1]);
  const [key, cert, ca] = await Promise.all([tlsFile(siteDir, "node.key"), tlsFile(siteDir, "node.pem"), tlsFile(siteDir, "root-ca.pem")].map((f) => readFile(f)));
  const started = performance.now();
  const socket = connect({ host: "127.0.0.1", port, key, cert, ca, servername: siteDnsName(ROOT), checkServerIdentity: (_host, peer) => checkServerIdentity(siteDnsName(ROOT), peer) });
  await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  async function* contents() {
    for (const file of files) yield* createReadStream(file.path, { highWaterMark: 1024 * 1024 });
  }
  await pipeline(contents, socket);
  const line = await receiver.waitForLine(/received \d+/, 600_000);
  const seconds = (performance.now() - started) / 1000;
  const received = Number(/received (\d+)/.exec(line)![1]);
  if (received !== total) throw new Error(`the TLS receiver got ${received} bytes, expected ${total}`);
  await receiver.exited;
  return { seconds: round(seconds), goodputMbit: round((total * 8) / seconds / 1e6) };
}

/** `rclone version`'s first line, or undefined when rclone cannot be run. */
async function rcloneVersion(): Promise<string | undefined> {
  const probe = spawnProcess("rclone", ["version"]);
  const exit = await probe.exited;
  return exit.code === 0 ? probe.stdout().split("\n")[0]!.trim() : undefined;
}

/** rclone copies the files to `rclone serve webdav` through the 25 ms proxy, with its bwlimit at the cap. */
async function rcloneTransfer(files: Recording[], filesDir: string, size: number, cap: number, transfers: number, kill: boolean) {
  const base = await makeTempDir("vmtree-bench-rclone-");
  const total = files.length * size;
  const served = join(base, "served");
  const config = join(base, "rclone.conf");
  await mkdir(served);
  await writeFile(config, "");
  let proxy: TcpProxy | undefined;
  try {
    const server = spawnProcess("rclone", ["serve", "webdav", served, "--addr", "127.0.0.1:0", "--config", config]);
    const address = /http:\/\/(127\.0\.0\.1:\d+)/.exec(await server.waitForLine(/WebDav Server started on http:\/\/127\.0\.0\.1:\d+/, 30_000))![1]!;
    proxy = await startTcpProxy({ target: hostPort(address), delayMs: WAN_DELAY_MS });
    // rclone's --bwlimit is in bytes per second; the B suffix takes the exact number.
    const bytesPerSecond = Math.round(cap / 8);
    const copy = () =>
      spawnProcess("rclone", [
        "copy", filesDir, ":webdav:", "--webdav-url", `http://${proxy!.address}/`, "--transfers", String(transfers),
        "--bwlimit", `${bytesPerSecond}B`, "--size-only", "--config", config, "--stats", "0",
      ]);
    const sampler = sampleUpstream(proxy);
    const started = performance.now();
    let running = copy();
    let inFlight: number | undefined;
    if (kill) {
      const p = proxy;
      await until(async () => p.bytesUpstream >= total * KILL_AT, timeoutFor(total, cap), "a quarter of the bytes sent");
      await running.kill9();
      const held = await sizes(served);
      inFlight = files.length - [...held.values()].filter((bytes) => bytes === size).length;
      running = copy();
    }
    const exit = await running.exited;
    if (exit.code !== 0) throw new Error(`rclone copy exited ${exit.code ?? exit.signal}: ${running.stderr()}`);
    const seconds = (performance.now() - started) / 1000;
    const samples = sampler.stop();
    await verify(files.map((file) => ({ path: join(served, file.path.slice(filesDir.length + 1)), sha256: file.sha256 })));
    return { transfer: figures(total, seconds, cap, samples, proxy.bytesUpstream), inFlight };
  } finally {
    await proxy?.close();
    await killAll();
    await rm(base, { recursive: true, force: true });
  }
}

async function sizes(dir: string): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  for (const name of await readdir(dir)) held.set(name, (await stat(join(dir, name))).size);
  return held;
}

/** Every file has its SHA-256. */
async function verify(files: readonly Recording[]): Promise<void> {
  for (const file of files) {
    const sha256 = await sha256Of(file.path);
    if (sha256 !== file.sha256) throw new Error(`${file.path} arrived with SHA-256 ${sha256}, expected ${file.sha256}`);
  }
}

/** Three times the capped duration and two minutes more; ten minutes more uncapped. */
function timeoutFor(total: number, cap: number | undefined): number {
  return cap === undefined ? 600_000 + total / 1e4 : ((total * 8) / cap) * 3_000 + 120_000;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function hostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(":");
  return { host: host!, port: Number(port) };
}

/** User and system CPU seconds a process has used, from /proc/PID/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** A field of /proc/PID/status in MB. */
async function memoryMb(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Math.round(kb / 1024);
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/** The figures of the table, each with its median over the runs. */
const ROWS: readonly { label: string; pick: (run: RunFigures) => number | undefined }[] = [
  { label: "(a) uncapped loopback goodput, Mbit/s", pick: (r) => r.uncapped.goodputMbit },
  { label: "(a) plain TLS socket, same bytes, Mbit/s", pick: (r) => r.tls.goodputMbit },
  { label: "(a) uncapped ÷ TLS socket", pick: (r) => r.uncappedOverTls },
  { label: "(b) loopback capped: goodput ÷ cap", pick: (r) => r.loopbackCapped.goodputOverCap },
  { label: "(b) loopback capped: 1-s peak ÷ cap", pick: (r) => r.loopbackCapped.peakOverCap },
  { label: "(b) 50 ms RTT capped: goodput ÷ cap", pick: (r) => r.wanCapped.goodputOverCap },
  { label: "(b) 50 ms RTT capped: 1-s peak ÷ cap", pick: (r) => r.wanCapped.peakOverCap },
  { label: "(c) kill -9: fragments in flight", pick: (r) => r.wanKill.inFlight },
  { label: "(c) kill -9: re-sent bytes per in-flight fragment, counted by the node", pick: (r) => r.wanKill.countedPerInFlight },
  { label: "(c) kill -9: bytes delivered twice per in-flight fragment (proxy)", pick: (r) => r.wanKill.proxyExtraPerInFlight },
  { label: "(c) kill -9: goodput ÷ cap, restart included", pick: (r) => r.wanKill.transfer.goodputOverCap },
  { label: "(d) sender peak RSS, MB (max over scenarios)", pick: (r) => Math.max(...scenarios(r).map((t) => t.senderPeakRssMb ?? 0)) },
  { label: "(d) receiver peak RSS, MB (max over scenarios)", pick: (r) => Math.max(...scenarios(r).map((t) => t.receiverPeakRssMb ?? 0)) },
  { label: "(e) rclone 50 ms RTT: goodput ÷ cap", pick: (r) => r.rclone?.wan.goodputOverCap },
  { label: "(e) rclone 50 ms RTT: 1-s peak ÷ cap", pick: (r) => r.rclone?.wan.peakOverCap },
  { label: "(e) rclone kill -9: files in flight", pick: (r) => r.rclone?.kill.inFlight },
  { label: "(e) rclone kill -9: bytes delivered twice per in-flight file (proxy)", pick: (r) => r.rclone?.kill.proxyExtraPerInFlight },
];

function scenarios(run: RunFigures): Transfer[] {
  return [run.uncapped, run.loopbackCapped, run.wanCapped, run.wanKill.transfer];
}

function medians(runs: readonly RunFigures[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const row of ROWS) {
    const values = runs.map(row.pick).filter((v): v is number => v !== undefined);
    if (values.length > 0) result[row.label] = median(values);
  }
  return result;
}

function printTable(runs: readonly RunFigures[], medianOf: Record<string, number>): void {
  const width = Math.max(...ROWS.map((r) => r.label.length));
  console.log(`\n${"figure".padEnd(width)}  ${"median".padStart(10)}  per run`);
  for (const row of ROWS) {
    if (medianOf[row.label] === undefined) continue;
    const values = runs.map(row.pick).map((v) => (v === undefined ? "-" : String(v)));
    console.log(`${row.label.padEnd(width)}  ${String(medianOf[row.label]).padStart(10)}  ${values.join(", ")}`);
  }
}

function describeTransfer(t: Transfer): string {
  const parts = [`${t.seconds} s, ${t.goodputMbit} Mbit/s`];
  if (t.goodputOverCap !== undefined) parts.push(`goodput ÷ cap ${t.goodputOverCap}`);
  if (t.peakOverCap !== undefined) parts.push(`1-s peak ÷ cap ${t.peakOverCap}`);
  if (t.leadSeconds !== undefined) parts.push(`quiet ${t.leadSeconds} s at the start, ${t.tailSeconds} s at the end`);
  if (t.senderPeakRssMb !== undefined) {
    parts.push(`peak RSS sender ${t.senderPeakRssMb} MB (${t.senderIdleRssMb} MB idle before), receiver ${t.receiverPeakRssMb} MB (${t.receiverIdleRssMb} MB idle before)`);
  }
  if (t.senderCpuSeconds !== undefined) parts.push(`CPU sender ${t.senderCpuSeconds} s, receiver ${t.receiverCpuSeconds} s`);
  return parts.join("; ");
}

function printRun(label: string, run: RunFigures, options: Options): void {
  console.log(`${label} (load average ${run.load[0]} at the start, ${run.load[1]} at the end):`);
  console.log(`  uncapped loopback: ${describeTransfer(run.uncapped)}; plain TLS socket ${run.tls.seconds} s, ${run.tls.goodputMbit} Mbit/s (ratio ${run.uncappedOverTls})`);
  console.log(`  capped ${formatBandwidth(options.cap)}, loopback via proxy: ${describeTransfer(run.loopbackCapped)}`);
  console.log(`  capped ${formatBandwidth(options.cap)}, 50 ms RTT: ${describeTransfer(run.wanCapped)}`);
  const k = run.wanKill;
  console.log(
    `  kill -9 of the sender at ${KILL_AT * 100} %, 50 ms RTT: ${k.inFlight} in flight; re-sent per in-flight fragment ${k.countedPerInFlight} bytes counted ` +
      `(${k.countedChunksPerInFlight} chunks), ${k.proxyExtraPerInFlight} bytes delivered beyond the clean run through the proxy; ${describeTransfer(k.transfer)}`,
  );
  if (run.rclone) {
    console.log(`  rclone, 50 ms RTT: ${describeTransfer(run.rclone.wan)}`);
    const r = run.rclone.kill;
    console.log(`  rclone kill -9 at ${KILL_AT * 100} %: ${r.inFlight} files in flight; ${r.proxyExtraPerInFlight} bytes delivered beyond the clean run per in-flight file; ${describeTransfer(r.transfer)}`);
  }
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
}
