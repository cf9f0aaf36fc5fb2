/**
 * Access policy benchmark (issue 4: access policies, R-6.3, R-21…27).
 *
 * 1. Propagation. Builds a real tree on 127.0.0.1 with mutual TLS: the root kz, `--regions`
 *    regions (kz.r01…) and `--sites-per-region` sites under each (kz.r01.s01…), every one a
 *    separate VmtreeNode with its own data directory and LevelDB store, enrolled for real
 *    (invite on the parent, join through its enrolment service). All nodes run in this one
 *    bench process, as the issue asks ("simulated in one test host"): their work shares one
 *    event loop and LevelDB's thread pool, where in the field every site has its own machine,
 *    so the times are an upper bound. For each run the root applies a new policy version (a
 *    revocation: one more deny) through AdminOperations.applyPolicy, as `vmtree policy apply`
 *    does, and the root's PolicyStore `applied` event gives, for each site, the moment the root
 *    learned that site applied it. Reported per run: the apply call itself and the first
 *    region's acknowledgement (baselines), the median and worst over the sites (the worst is
 *    the time until the last site acknowledged).
 * 2. Decisions. The root applies a set of 10,000 bindings (users, groups, scopes all over the
 *    tree, camera ids and types; its propagation to every site is timed once); the site
 *    kz.r01.s01 imports examples/inventory/kz.ala.metro-01.csv. Then:
 *    (a) PolicyEngine.decide in-process on the site's sets for mixed requests (allowed, denied
 *        by a deny, default deny), against a naive linear scan of all bindings for the same
 *        requests in the same run (which must decide the same);
 *    (b) authorize through the site's admin socket, the site running as its own `vmtree serve`
 *        process (so client and server do not share an event loop), `--in-flight` calls at a
 *        time, each decision audited as the product does; the baseline in the same run is the
 *        same socket and concurrency serving recordAudit, the cheapest audited call: one
 *        validated audit append, no decision, so the ratio is what deciding adds to the audit.
 *
 * Usage: npm run bench:policy -- [--runs 5] [--regions 10] [--sites-per-region 20]
 *        [--bindings 10000] [--requests 10000] [--in-flight 64]
 * Figures are printed and saved to bench/results/policy.json (not committed).
 */
import { readFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { PolicyApplied, PolicyBinding, PolicySet } from "../src/gen/vmtree/v1/policy.ts";
import { connectAdmin, type NodeAdmin } from "../src/node/admin-client.ts";
import { initRoot, joinParent } from "../src/node/enrolment.ts";
import { VmtreeNode } from "../src/node/node.ts";
import { isInSubtree } from "../src/pki/site-id.ts";
import type { Decision, DecisionRequest, PolicyEngine } from "../src/policy/policy-engine.ts";
import { killAll, makeTempDir, removeTempDirs, spawnNode, type ManagedProcess } from "../test/support/processes.ts";
import { median, positive, round } from "./figures.ts";

const ACTOR = "user:bench";
const ROOT = "kz";
const ENROL_CONCURRENCY = 8;
const READY_TIMEOUT_MS = 180_000;
const PROPAGATION_TIMEOUT_MS = 120_000;
const BIG_PROPAGATION_TIMEOUT_MS = 600_000;
/** The site that holds the inventory and answers the authorize requests. */
const DECIDING_SITE = "kz.r01.s01";
const INVENTORY = new URL("../examples/inventory/kz.ala.metro-01.csv", import.meta.url).pathname;
const ENGINE_RUN_MS = 1_000;
const ACTIONS = ["view_live", "view_archive", "export_fragment", "ptz_control", "manage_cameras", "manage_policies", "read_audit"] as const;

interface Options {
  runs: number;
  regions: number;
  sitesPerRegion: number;
  bindings: number;
  requests: number;
  inFlight: number;
}

interface Tree {
  root: VmtreeNode;
  regions: VmtreeNode[];
  sites: VmtreeNode[];
  all: VmtreeNode[];
  setupSeconds: number;
}

interface PropagationRun {
  version: number;
  /** The applyPolicy call at the root, start to return. */
  applyMs: number;
  /** Until the root learned that the first of its direct children applied the version. */
  firstRegionMs: number;
  siteMedianMs: number;
  siteP90Ms: number;
  /** The slowest site: also the time until the last site acknowledged. */
  siteWorstMs: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      regions: { type: "string", default: "10" },
      "sites-per-region": { type: "string", default: "20" },
      bindings: { type: "string", default: "10000" },
      requests: { type: "string", default: "10000" },
      "in-flight": { type: "string", default: "64" },
    },
  });
  const options: Options = {
    runs: positive("runs", values.runs),
    regions: positive("regions", values.regions),
    sitesPerRegion: positive("sites-per-region", values["sites-per-region"]),
    bindings: positive("bindings", values.bindings),
    requests: positive("requests", values.requests),
    inFlight: positive("in-flight", values["in-flight"]),
  };
  if (options.regions > 99 || options.sitesPerRegion > 99) throw new Error("at most 99 regions and 99 sites per region");

  let tree: Tree | undefined;
  let siteProcess: ManagedProcess | undefined;
  try {
    const base = await makeTempDir("vmtree-bench-policy-");
    tree = await buildTree(base, options);
    const siteCount = tree.sites.length;
    console.log(
      `tree: ${ROOT}, ${tree.regions.length} regions, ${siteCount} sites = ${tree.all.length} nodes, all in this process (pid ${process.pid}), ` +
        `mutual TLS on 127.0.0.1; enrolled and in sync in ${tree.setupSeconds} s`,
    );

    // Warm-up: the first version reaches every node before anything is timed.
    const warm = await propagate(tree, smallPolicy(0), PROPAGATION_TIMEOUT_MS);
    console.log(`warm-up version ${warm.version}: all ${siteCount} sites in ${warm.siteWorstMs} ms (not counted)`);

    const listeners = listenerCounts(tree);
    const runs: PropagationRun[] = [];
    for (let i = 1; i <= options.runs; i++) {
      const run = await propagate(tree, smallPolicy(i), PROPAGATION_TIMEOUT_MS);
      runs.push(run);
      console.log(
        `propagation run ${i}/${options.runs} (version ${run.version}): apply call ${run.applyMs} ms, first region ${run.firstRegionMs} ms; ` +
          `${siteCount} sites: median ${run.siteMedianMs} ms, p90 ${run.siteP90Ms} ms, worst (= last site) ${run.siteWorstMs} ms`,
      );
    }
    // Every apply must leave the policy stores' listeners as it found them (no leak per version).
    const after = listenerCounts(tree);
    if (after !== listeners) throw new Error(`policy store listeners changed over the runs: ${listeners} before, ${after} after`);
    const propagation = {
      sites: siteCount,
      nodes: tree.all.length,
      hosting: "all nodes in one process",
      runs,
      medianOfRunMedians: median(runs.map((r) => r.siteMedianMs)),
      worstOfAll: Math.max(...runs.map((r) => r.siteWorstMs)),
      medianApplyMs: median(runs.map((r) => r.applyMs)),
      medianFirstRegionMs: median(runs.map((r) => r.firstRegionMs)),
    };
    console.log(
      `propagation to ${siteCount} sites over ${options.runs} runs: median of run medians ${propagation.medianOfRunMedians} ms, worst of all ${propagation.worstOfAll} ms ` +
        `(${round(propagation.medianOfRunMedians / propagation.medianFirstRegionMs)}× the first region's ${propagation.medianFirstRegionMs} ms; apply call ${propagation.medianApplyMs} ms)`,
    );

    // Part 2: a site holding `bindings` bindings.
    const site = tree.sites.find((node) => node.config.site === DECIDING_SITE);
    if (!site) throw new Error(`no ${DECIDING_SITE} in the tree`);
    await site.operations.importCameras(ACTOR, "kz.ala.metro-01.csv", await readFile(INVENTORY));
    const cameras = (await site.replica.list(DECIDING_SITE)).map((c) => ({ id: c.camera.camera_id, type: c.camera.camera_type }));
    const big = bigPolicy(tree, options.bindings, cameras);
    const bytes = Buffer.from(JSON.stringify(big.document));
    const bigRun = await propagate(tree, bytes, BIG_PROPAGATION_TIMEOUT_MS);
    const rssMb = Math.round(process.memoryUsage().rss / 1024 / 1024);
    console.log(
      `${options.bindings}-binding set (${(bytes.length / 1024 / 1024).toFixed(2)} MiB of JSON), once: apply call ${bigRun.applyMs} ms, first region ${bigRun.firstRegionMs} ms, ` +
        `${siteCount} sites: median ${bigRun.siteMedianMs} ms, worst ${bigRun.siteWorstMs} ms; bench process RSS now ${rssMb} MB`,
    );

    const sets = (await site.policies.sets()).map((held) => held.set);
    const naive = naiveSets(sets);
    const engine = await site.policies.engine();
    const requests = mixedRequests(engine, big, cameras);
    const counts = tally(engine, requests);
    checkNaiveAgrees(engine, naive, requests);
    console.log(
      `requests at ${DECIDING_SITE}: ${requests.length} (${counts.allow} allowed, ${counts.denied} denied by a deny, ${counts.defaultDeny} default deny), ` +
        `${sets.reduce((n, s) => n + (s.document?.bindings.length ?? 0), 0)} bindings held; the naive scan decides all of them the same`,
    );

    const engineRuns: { engine: number; naive: number; ratio: number }[] = [];
    for (let i = 1; i <= options.runs; i++) {
      const engineRate = rate(() => engine.decide(requests[0]!), requests, (r) => engine.decide(r));
      const naiveRate = rate(() => naiveDecide(naive, requests[0]!), requests, (r) => naiveDecide(naive, r));
      engineRuns.push({ engine: engineRate, naive: naiveRate, ratio: round(engineRate / naiveRate) });
      console.log(`engine run ${i}/${options.runs}: PolicyEngine.decide ${engineRate} decisions/s; naive linear scan ${naiveRate} decisions/s (ratio ${round(engineRate / naiveRate)})`);
    }

    // The site leaves this process and runs as `vmtree serve`, its uplink to kz.r01 in here.
    await site.close();
    siteProcess = spawnNode(["serve", "--data", site.dir.root], { env: { VMTREE_LOG_LEVEL: "warn" } });
    await siteProcess.waitForLine(/serving on \S+/, 30_000);
    const admin = await connectAdmin(site.dir.root, ACTOR);
    const socketRuns: { authorize: number; recordAudit: number; ratio: number }[] = [];
    try {
      // Warm-up: the engine is built on the first decision after the node opened its store.
      await closedLoop(options.inFlight, Math.min(1_000, options.requests), (i) => admin.authorize(toAuthorize(requests[i % requests.length]!)));
      for (let i = 1; i <= options.runs; i++) {
        const authorizeRate = await socketRate(admin, options, requests, "authorize");
        const auditRate = await socketRate(admin, options, requests, "recordAudit");
        socketRuns.push({ authorize: authorizeRate, recordAudit: auditRate, ratio: round(authorizeRate / auditRate) });
        console.log(
          `admin socket run ${i}/${options.runs}: authorize ${authorizeRate} decisions/s, ${options.inFlight} in flight, each audited; ` +
            `recordAudit on the same socket ${auditRate} calls/s (ratio ${round(authorizeRate / auditRate)})`,
        );
      }
    } finally {
      await admin.close();
    }
    await siteProcess.kill("SIGTERM");
    const exit = await siteProcess.exited;
    if (exit.code !== 0) throw new Error(`the site's vmtree serve exited ${exit.code ?? exit.signal}: ${siteProcess.stderr()}`);

    const decisions = {
      site: DECIDING_SITE,
      bindings: options.bindings,
      requests: requests.length,
      mix: counts,
      bigSetPropagation: bigRun,
      engineRuns,
      socketRuns,
      inFlight: options.inFlight,
      median: {
        engineDecisionsPerSecond: median(engineRuns.map((r) => r.engine)),
        naiveDecisionsPerSecond: median(engineRuns.map((r) => r.naive)),
        engineOverNaive: median(engineRuns.map((r) => r.ratio)),
        authorizePerSecond: median(socketRuns.map((r) => r.authorize)),
        recordAuditPerSecond: median(socketRuns.map((r) => r.recordAudit)),
        authorizeOverRecordAudit: median(socketRuns.map((r) => r.ratio)),
      },
    };
    const m = decisions.median;
    console.log(
      `\nsummary: tree of ${tree.all.length} nodes set up in ${tree.setupSeconds} s; propagation to ${siteCount} sites: median ${propagation.medianOfRunMedians} ms, ` +
        `worst ${propagation.worstOfAll} ms (first region ${propagation.medianFirstRegionMs} ms)\n` +
        `summary: ${options.bindings} bindings: engine ${m.engineDecisionsPerSecond} decisions/s (${m.engineOverNaive}× the naive scan's ${m.naiveDecisionsPerSecond}); ` +
        `authorize over the admin socket ${m.authorizePerSecond} decisions/s audited (${m.authorizeOverRecordAudit}× recordAudit's ${m.recordAuditPerSecond} calls/s)`,
    );

    const summary = {
      benchmark: "policy",
      date: new Date().toISOString(),
      node: process.version,
      options,
      setupSeconds: tree.setupSeconds,
      propagation,
      decisions,
    };
    const out = new URL("./results/", import.meta.url);
    await mkdir(out, { recursive: true });
    await writeFile(new URL("policy.json", out), JSON.stringify(summary, null, 2) + "\n");
    console.log("saved bench/results/policy.json");
  } finally {
    await siteProcess?.kill();
    await killAll();
    if (tree) await Promise.allSettled(tree.all.map((node) => node.close()));
    await removeTempDirs();
  }
}

/** Creates, enrols and serves the whole tree, and waits until every link is up and in sync. */
async function buildTree(base: string, options: Options): Promise<Tree> {
  const started = performance.now();
  const all: VmtreeNode[] = [];
  const open = async (site: string): Promise<VmtreeNode> => {
    const node = await VmtreeNode.open(join(base, site), { logLevel: "warn" });
    all.push(node);
    await node.serve();
    return node;
  };
  const enrol = async (parent: VmtreeNode, site: string): Promise<VmtreeNode> => {
    const { token } = await parent.operations.createInvite(ACTOR, site);
    await joinParent({ dataDir: join(base, site), token, listen: "127.0.0.1:0" });
    return open(site);
  };
  await initRoot({ dataDir: join(base, ROOT), site: ROOT, listen: "127.0.0.1:0" });
  const root = await open(ROOT);
  const regionIds = range(options.regions).map((r) => `${ROOT}.r${pad(r)}`);
  const regions = await pool(regionIds, ENROL_CONCURRENCY, (id) => enrol(root, id));
  progress(`enrolled ${regions.length} regions`, started);
  const siteJobs = regions.flatMap((region) => range(options.sitesPerRegion).map((s) => ({ region, id: `${region.config.site}.s${pad(s)}` })));
  const sites = await pool(siteJobs, ENROL_CONCURRENCY, ({ region, id }) => enrol(region, id));
  progress(`enrolled ${sites.length} sites`, started);

  const below = [...regions, ...sites];
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const waiting = below.filter((node) => {
      const state = node.uplinkState();
      return state?.state !== "connected" || state.policyAgeMs === undefined;
    });
    if (waiting.length === 0) break;
    if (Date.now() % 5_000 < 100) progress(`${waiting.length} nodes not yet connected and in sync, e.g. ${waiting[0]!.config.site}: ${JSON.stringify(waiting[0]!.uplinkState())}`, started);
    if (Date.now() > deadline) throw new Error(`${waiting.length} nodes not connected and in sync after ${READY_TIMEOUT_MS} ms, e.g. ${waiting[0]!.config.site}`);
    await sleep(100);
  }
  return { root, regions, sites, all, setupSeconds: round((performance.now() - started) / 1000) };
}

/** The `sets` and `applied` listeners of every node's policy store, as one comparable string. */
function listenerCounts(tree: Tree): string {
  return tree.all.map((node) => `${node.policies.listenerCount("sets")}/${node.policies.listenerCount("applied")}`).join(",");
}

/**
 * Applies `content` at the root as a new version and resolves once the root learned that
 * every site applied it, with the times measured from the start of the apply call.
 */
async function propagate(tree: Tree, content: Uint8Array, timeoutMs: number): Promise<PropagationRun> {
  const { root } = tree;
  const siteIds = new Set(tree.sites.map((node) => node.config.site));
  const regionIds = new Set(tree.regions.map((node) => node.config.site));
  const version = ((await root.policies.own())?.version ?? 0) + 1;
  const siteMs = new Map<string, number>();
  let firstRegionMs: number | undefined;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  let started = 0;
  const onApplied = (reports: PolicyApplied[]) => {
    const now = performance.now();
    for (const report of reports) {
      const applied = report.versions.find((v) => v.author === ROOT)?.version ?? 0;
      if (applied < version) continue;
      if (regionIds.has(report.site)) firstRegionMs ??= now - started;
      if (siteIds.has(report.site) && !siteMs.has(report.site)) siteMs.set(report.site, now - started);
    }
    if (siteMs.size === siteIds.size) allDone();
  };
  root.policies.on("applied", onApplied);
  let timer: NodeJS.Timeout | undefined;
  try {
    started = performance.now();
    const response = await root.operations.applyPolicy(ACTOR, "policy.json", content);
    const applyMs = performance.now() - started;
    if (response.set?.version !== version) throw new Error(`the root applied version ${response.set?.version ?? "none"}, expected ${version}`);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing = [...siteIds].filter((s) => !siteMs.has(s));
        reject(new Error(`version ${version}: ${missing.length} sites had not acknowledged after ${timeoutMs} ms, e.g. ${missing.slice(0, 5).join(", ")}`));
      }, timeoutMs);
    });
    await Promise.race([done, timeout]);
    const times = [...siteMs.values()].sort((a, b) => a - b);
    return {
      version,
      applyMs: round(applyMs),
      firstRegionMs: round(firstRegionMs ?? NaN),
      siteMedianMs: round(median(times)),
      siteP90Ms: round(times[Math.min(times.length - 1, Math.ceil(times.length * 0.9) - 1)]!),
      siteWorstMs: round(times.at(-1)!),
    };
  } finally {
    clearTimeout(timer);
    root.policies.off("applied", onApplied);
  }
}

/** A small national policy; version `n` revokes one more user's PTZ with a deny. */
function smallPolicy(n: number): Uint8Array {
  const bindings: Record<string, unknown>[] = [
    { id: "duty-live", subject: "group:duty", role: "operator", scope: ROOT, effect: "allow" },
    { id: "national-audit", subject: "user:auditor.kz", action: "read_audit", scope: ROOT, effect: "allow" },
  ];
  for (let i = 0; i <= n; i++) bindings.push({ id: `revoke-${i}`, subject: `user:revoked-${i}`, action: "ptz_control", scope: ROOT, effect: "deny" });
  return Buffer.from(JSON.stringify({ roles: { operator: ["view_live", "view_archive", "ptz_control"] }, groups: { duty: ["a.nurlanov", "b.sadykova"] }, bindings }));
}

interface BigPolicy {
  document: { roles: Record<string, string[]>; groups: Record<string, string[]>; bindings: Record<string, unknown>[] };
  users: string[];
}

/**
 * `count` bindings for the whole tree, the same on every run (a seeded generator): 5,000
 * users, 500 groups of 20, roles and single actions, scopes at the root (2 %), the regions
 * (18 %) and the sites (80 %), some limited to camera ids or types of the site's inventory,
 * one in ten a deny.
 */
function bigPolicy(tree: Tree, count: number, cameras: readonly { id: string; type: string }[]): BigPolicy {
  const random = seeded(42);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const users = range(5_000).map((i) => `u${String(i).padStart(5, "0")}`);
  const groups: Record<string, string[]> = {};
  for (let g = 1; g <= 500; g++) groups[`g${String(g).padStart(3, "0")}`] = [...new Set(range(20).map(() => pick(users)))].sort();
  const groupNames = Object.keys(groups);
  const roles = { operator: ["view_live", "view_archive", "ptz_control"], investigator: ["view_live", "view_archive", "export_fragment"], admin: ["manage_cameras", "manage_policies", "read_audit"] };
  const regionIds = tree.regions.map((n) => n.config.site);
  const siteIds = tree.sites.map((n) => n.config.site);
  const types = [...new Set(cameras.map((c) => c.type))];
  const bindings: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const scope = r < 0.02 ? ROOT : r < 0.2 ? pick(regionIds) : pick(siteIds);
    const binding: Record<string, unknown> = {
      id: `b${String(i).padStart(5, "0")}`,
      subject: random() < 0.7 ? `user:${pick(users)}` : `group:${pick(groupNames)}`,
      ...(random() < 0.5 ? { role: pick(Object.keys(roles)) } : { action: pick(ACTIONS) }),
      scope,
    };
    const limit = random();
    if (limit < 0.3) binding.cameras = [...new Set(range(1 + Math.floor(random() * 3)).map(() => pick(cameras).id))];
    else if (limit < 0.5) binding.camera_types = [pick(types)];
    binding.effect = random() < 0.1 ? "deny" : "allow";
    bindings.push(binding);
  }
  return { document: { roles, groups, bindings }, users };
}

/**
 * Requests for the deciding site, a third each of allowed, denied by a deny and default deny,
 * interleaved. The allowed and denied ones are drawn from the bindings covering the site.
 */
function mixedRequests(engine: PolicyEngine, big: BigPolicy, cameras: readonly { id: string; type: string }[]): DecisionRequest[] {
  const random = seeded(7);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const perKind = 1_000;
  const atMs = Date.now();
  const covering = big.document.bindings.filter((b) => isInSubtree(DECIDING_SITE, b.scope as string));
  const make = (user: string, action: string, camera: { id: string; type: string }): DecisionRequest => ({ user, action, site: DECIDING_SITE, camera: camera.id, cameraType: camera.type, atMs });
  const buckets = { allow: [] as DecisionRequest[], denied: [] as DecisionRequest[], defaultDeny: [] as DecisionRequest[] };
  for (let attempt = 0; attempt < 1_000_000 && Object.values(buckets).some((b) => b.length < perKind); attempt++) {
    let request: DecisionRequest;
    if (attempt % 2 === 0) {
      const binding = pick(covering);
      const subject = binding.subject as string;
      const user = subject.startsWith("user:") ? subject.slice(5) : pick(big.document.groups[subject.slice(6)]!);
      const action = (binding.action as string | undefined) ?? pick(big.document.roles[binding.role as string]!);
      const ids = binding.cameras as string[] | undefined;
      const id = ids ? pick(ids) : undefined;
      const camera = id !== undefined ? cameras.find((c) => c.id === id)! : pick(cameras);
      request = make(user, action, camera);
    } else {
      request = make(pick(big.users), pick(ACTIONS), pick(cameras));
    }
    const d = engine.decide(request);
    const bucket = d.decision === "allow" ? buckets.allow : d.binding !== "" ? buckets.denied : buckets.defaultDeny;
    if (bucket.length < perKind) bucket.push(request);
  }
  for (const [kind, bucket] of Object.entries(buckets)) if (bucket.length < perKind) throw new Error(`found only ${bucket.length} ${kind} requests`);
  return range(perKind).flatMap((i) => [buckets.allow[i - 1]!, buckets.denied[i - 1]!, buckets.defaultDeny[i - 1]!]);
}

function tally(engine: PolicyEngine, requests: readonly DecisionRequest[]): { allow: number; denied: number; defaultDeny: number } {
  const counts = { allow: 0, denied: 0, defaultDeny: 0 };
  for (const request of requests) {
    const d = engine.decide(request);
    if (d.decision === "allow") counts.allow++;
    else if (d.binding !== "") counts.denied++;
    else counts.defaultDeny++;
  }
  return counts;
}

/** A set prepared for the naive scan: only its groups and roles are looked up, its bindings are not indexed. */
interface NaiveSet {
  readonly set: PolicySet;
  readonly bindings: readonly PolicyBinding[];
  readonly members: ReadonlyMap<string, ReadonlySet<string>>;
  readonly roles: ReadonlyMap<string, readonly string[]>;
}

function naiveSets(sets: readonly PolicySet[]): NaiveSet[] {
  return sets.map((set) => ({
    set,
    bindings: set.document?.bindings ?? [],
    members: new Map((set.document?.groups ?? []).map((g) => [g.name, new Set(g.users)])),
    roles: new Map((set.document?.roles ?? []).map((r) => [r.name, r.actions])),
  }));
}

/**
 * The naive decision: every binding of every set, root first and in file order, is tested
 * against the request; a matching active deny decides at once, else the first matching allow.
 */
function naiveDecide(sets: readonly NaiveSet[], request: DecisionRequest): Pick<Decision, "decision" | "binding" | "origin" | "version"> {
  let allow: { set: PolicySet; binding: PolicyBinding } | undefined;
  const user = `user:${request.user}`;
  for (const { set, bindings, members, roles } of sets) {
    for (const binding of bindings) {
      const subject = binding.subject;
      if (subject !== user && !(subject.startsWith("group:") && members.get(subject.slice(6))?.has(request.user))) continue;
      const actions = binding.action !== "" ? [binding.action] : (roles.get(binding.role) ?? []);
      if (!actions.includes(request.action) || !isInSubtree(request.site, binding.scope)) continue;
      const byId = binding.cameras.length > 0;
      const byType = binding.camera_types.length > 0;
      if ((byId || byType) && !((byId && binding.cameras.includes(request.camera)) || (byType && binding.camera_types.includes(request.cameraType ?? "")))) continue;
      const active = (binding.valid_from_ms === 0 || binding.valid_from_ms <= request.atMs) && (binding.valid_until_ms === 0 || request.atMs < binding.valid_until_ms);
      if (!active) continue;
      if (binding.effect === "deny") return { decision: "deny", binding: binding.id, origin: set.author, version: set.version };
      allow ??= { set, binding };
    }
  }
  return allow ? { decision: "allow", binding: allow.binding.id, origin: allow.set.author, version: allow.set.version } : { decision: "deny", binding: "", origin: "", version: 0 };
}

function checkNaiveAgrees(engine: PolicyEngine, sets: readonly NaiveSet[], requests: readonly DecisionRequest[]): void {
  for (const request of requests) {
    const a = engine.decide(request);
    const b = naiveDecide(sets, request);
    if (a.decision !== b.decision || a.binding !== b.binding || a.origin !== b.origin || a.version !== b.version) {
      throw new Error(`the engine and the naive scan disagree on ${JSON.stringify(request)}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
  }
}

/** Decisions per second of `decide` over the requests, passes repeated for about a second. */
function rate(warm: () => unknown, requests: readonly DecisionRequest[], decide: (r: DecisionRequest) => unknown): number {
  for (let i = 0; i < 100; i++) warm();
  let decided = 0;
  let sink = 0;
  const started = performance.now();
  let elapsed = 0;
  do {
    for (const request of requests) if (decide(request)) sink++;
    decided += requests.length;
    elapsed = performance.now() - started;
  } while (elapsed < ENGINE_RUN_MS);
  if (sink !== decided) throw new Error("a decision came back empty");
  return Math.round(decided / (elapsed / 1000));
}

/** Calls per second of `requests` admin calls of one kind, `inFlight` at a time. */
async function socketRate(admin: NodeAdmin, options: Options, requests: readonly DecisionRequest[], kind: "authorize" | "recordAudit"): Promise<number> {
  const started = performance.now();
  await closedLoop(options.inFlight, options.requests, async (i) => {
    const request = requests[i % requests.length]!;
    if (kind === "authorize") {
      await admin.authorize(toAuthorize(request));
    } else {
      await admin.recordAudit({ actor: `user:${request.user}`, action: `vms.${request.action}`, target: `${DECIDING_SITE}/${request.camera}`, result: "ok", details: "" });
    }
  });
  return Math.round(options.requests / ((performance.now() - started) / 1000));
}

function toAuthorize(request: DecisionRequest) {
  return { user: request.user, action: request.action, camera: request.camera, site: "", at_ms: 0 };
}

/** Runs `call(0…total-1)` with at most `inFlight` running at once; rejects on the first failure. */
async function closedLoop(inFlight: number, total: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await call(next++);
  };
  await Promise.all(range(Math.min(inFlight, total)).map(worker));
}

/** Maps `items` through `work`, `limit` at a time, keeping the order. */
async function pool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(range(Math.min(limit, items.length)).map(worker));
  return results;
}

/** A small deterministic generator (mulberry32), so that every run builds the same policy. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 1…n. */
function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** A line on stderr about the set-up, with the seconds since `since`. */
function progress(what: string, since: number): void {
  console.error(`[${round((performance.now() - since) / 1000)} s] ${what}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
}
