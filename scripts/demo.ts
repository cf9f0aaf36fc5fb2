/**
 * `npm run demo`: a national tree of seven vmtree nodes on loopback, each node and each
 * command its own OS process driven through the `vmtree` CLI. It enrols the tree, imports
 * three site inventories, shows the national view, takes a region down while one of its
 * sites keeps changing its inventory, brings the region back and checks that the national
 * view converges with exactly the changes made during the outage. Then the national node
 * authors an access policy that reaches every node, and a site decides requests from it. Then
 * the national node requests a site's video fragment, whose upload is cut mid-transfer and
 * resumes. Last, the national node verifies the audit chain of every node of the tree, the
 * outage's offline import and the site's decisions among them.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CHUNK_BYTES } from "../src/transfer/fragment-upload.ts";
import { writeChangedInventory, type InventoryChange } from "./demo/akimat-change.ts";
import { Checks } from "./demo/checks.ts";
import { Cluster } from "./demo/cluster.ts";
import type { DemoNode, FragmentAsk, NodeStatus, Recording, SiteCamera, Transfers } from "./demo/demo-node.ts";
import { EXPECTED_DECISIONS, POLICY_CAMERA, writeDemoPolicy } from "./demo/demo-policy.ts";
import { describeChanges, nationalTable, summarise, withCredentials } from "./demo/national-view.ts";
import { createOutput, seconds, type Output } from "./demo/output.ts";
import { DEMO_DIR, REPO_ROOT, shown } from "./demo/paths.ts";
import { formatTable } from "./demo/table.ts";
import { waitFor } from "./demo/wait.ts";

const ROOT = "kz";
const REGIONS = ["kz.ala", "kz.ast", "kz.shy"];
const SITES = [
  { site: "kz.ala.metro-01", inventory: "examples/inventory/kz.ala.metro-01.csv", cameras: 40 },
  { site: "kz.ast.akimat", inventory: "examples/inventory/kz.ast.akimat.json", cameras: 24 },
  { site: "kz.shy.road-a2", inventory: "examples/inventory/kz.shy.road-a2.csv", cameras: 18 },
];
const EXPECTED_TOTAL = SITES.reduce((sum, s) => sum + s.cameras, 0);
/** The region stopped for the outage, and kz.ast.akimat below it that keeps working meanwhile. */
const OUTAGE = { region: "kz.ast", ...SITES[1]! };
/** One camera changed, one removed, one added during the outage. */
const EXPECTED_RESENT = 3;
const TIME_BUDGET_MS = 120_000;
const WAIT_MS = 30_000;
const STEPS = 10;
/** The site that decides the demo's access requests. */
const POLICY_SITE = SITES[0]!.site;
/**
 * The recording the national node asks for (examples/fragments/fragments.json), and the cap
 * that makes its first hop last long enough to cut the site's link in the middle of it.
 */
const FRAGMENT = {
  site: SITES[0]!.site,
  recording: {
    camera: "metro-01-cam-001",
    file: "examples/fragments/cam-ala-001_20261120T081500Z.mp4",
    start: "2026-11-20T08:15:00Z",
    end: "2026-11-20T08:15:04Z",
  } satisfies Recording,
  cap: "2Mbit",
  /** The share of the fragment sent when the link is cut, and for how long it stays down. */
  cutAt: 0.4,
  downMs: 3_000,
};
/** Every node of the tree records its own audit chain, and the national node holds them all. */
const NODES = 1 + REGIONS.length + SITES.length;

const CHECKS = {
  tree: "tree enrolled",
  cameras: `${EXPECTED_TOTAL} cameras at national`,
  credentials: "no credentials in stream_url at national",
  autonomy: "site works on its own during the outage",
  convergence: "convergence after the outage",
  resent: `exactly ${EXPECTED_RESENT} changes re-sent`,
  policyFlow: "policy applied by every node",
  decisions: `decisions at ${POLICY_SITE} as the policy says`,
  fragment: `fragment from ${FRAGMENT.site} intact at ${ROOT}`,
  fragmentResent: "at most one chunk re-sent after the cut",
  audit: "audit chains verified at national",
  time: "within two minutes",
} as const;

/** What the outage step hands to the reconnect step. */
interface Outage {
  change: InventoryChange;
  /** The site's `parent.sent` when the outage began. */
  sentBefore: number;
}

/** What the steps share. */
interface Demo {
  cluster: Cluster;
  checks: Checks<keyof typeof CHECKS>;
  out: Output;
  signal: AbortSignal;
  /** Every national view fetched, to check that no credentials reached the national node. */
  nationalViews: SiteCamera[][];
}

/**
 * Runs the demo and resolves with the exit code: 0 when every check passed, 130 when
 * interrupted, 1 otherwise. Every node it started is stopped before it resolves, also on
 * errors, Ctrl-C and SIGTERM; a second Ctrl-C kills the nodes and exits at once. A node
 * that exits while the demo needs it ends the demo at once.
 */
export async function main(): Promise<number> {
  const out = createOutput(STEPS, performance.now());
  const checks = new Checks(CHECKS);
  const nationalViews: SiteCamera[][] = [];
  const interrupt = new AbortController();
  const nodeLost = new AbortController();
  const signal = AbortSignal.any([interrupt.signal, nodeLost.signal]);
  let cluster: Cluster | undefined;
  const removeHandlers = handleSignals(out, interrupt, () => cluster?.killNow());
  let failure: unknown;
  try {
    out.step(1, "Fresh demo directory");
    cluster = await Cluster.create(DEMO_DIR, signal, (node, how) => {
      if (!signal.aborted) nodeLost.abort(new Error(`${node.site} exited while the demo needed it (${how}); see ${shown(node.logFile)}`));
    });
    out.line(`wiped and created ${shown(cluster.dir)}/: <site>/ data directories, logs/<site>.log node logs, inventory/`);
    await runScenario({ cluster, checks, out, signal, nationalViews });
  } catch (error) {
    failure = error;
    out.warn(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    out.step(STEPS, "Stop every node and summarise");
    if (cluster) await stopAll(cluster, out);
    removeHandlers();
  }
  checkCredentials(checks, nationalViews);
  const elapsed = out.elapsedMs();
  checks.record("time", elapsed <= TIME_BUDGET_MS, `${seconds(elapsed)} of ${seconds(TIME_BUDGET_MS)}`);
  out.line();
  out.lines(checks.report());
  const passed = failure === undefined && checks.allPassed;
  out.line();
  out.line(`${passed ? "PASS" : "FAIL"}: demo finished in ${seconds(elapsed)}; node logs in ${shown(cluster?.logDir ?? DEMO_DIR)}/`);
  if (interrupt.signal.aborted) return 130;
  return passed ? 0 : 1;
}

/**
 * On the first SIGINT or SIGTERM aborts `interrupt` so that the demo winds down and stops
 * its nodes; on the second calls `killNodes` and exits. `killNodes` also runs should the
 * process exit with nodes still running. Returns the function that removes the handlers.
 */
function handleSignals(out: Output, interrupt: AbortController, killNodes: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) {
      killNodes();
      process.exit(130);
    }
    out.warn(`${signal}: stopping the demo (again to kill the nodes at once)`);
    interrupt.abort(new Error(`interrupted by ${signal}`));
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal).on("exit", killNodes);
  return () => process.off("SIGINT", onSignal).off("SIGTERM", onSignal).off("exit", killNodes);
}

async function runScenario(demo: Demo): Promise<void> {
  await enrolTree(demo);
  await importInventories(demo);
  const before = await showNationalView(demo);
  const change = await runOutage(demo, before);
  await reconnect(demo, before, change);
  await distributePolicy(demo);
  await moveFragment(demo);
  await verifyNationalAudit(demo);
}

/**
 * Step 2: the root, then the regions under it, then the sites under their regions. The
 * nodes of one level enrol in parallel: their parents all run already.
 */
async function enrolTree({ cluster, checks, out, signal }: Demo): Promise<void> {
  out.step(2, "Enrol the tree: init, invite, join, serve");
  await cluster.createRoot(ROOT);
  // The fragment site's parent link runs through a proxy on loopback, for step 8 to cut.
  for (const level of [REGIONS, SITES.map((s) => s.site)]) await Promise.all(level.map((site) => cluster.enrol(site, { throughProxy: site === FRAGMENT.site })));
  const parentOf = (node: DemoNode) => (node.site === FRAGMENT.site ? `${node.parentSite} via ${cluster.linkProxy(node.site).address}` : (node.parentSite ?? "(root)"));
  const rows = cluster.nodes.map((node) => [node.site, parentOf(node), node.address, shown(node.logFile)]);
  out.lines(formatTable(["NODE", "PARENT", "SERVING ON", "LOG"], rows));
  const children = cluster.nodes.filter((node) => node.parentSite !== undefined);
  await waitFor(async () => ((await Promise.all(children.map((n) => n.status()))).every(isConnected) ? true : undefined), {
    what: "every node's parent link to connect",
    timeoutMs: WAIT_MS,
    signal,
  });
  const detail = `${cluster.nodes.length} nodes serving, ${children.length} of ${children.length} parent links connected`;
  out.line(detail);
  checks.record("tree", true, detail);
}

/** Step 3: each site imports its sample inventory (paths are relative to the repository, where commands run). */
async function importInventories({ cluster, out }: Demo): Promise<void> {
  out.step(3, "Import the site inventories");
  for (const { site, inventory } of SITES) out.line(`${site.padEnd(16)} ${await cluster.node(site).importCameras(inventory)}`);
}

/** Step 4: waits until the national node holds every camera and shows its view. */
async function showNationalView(demo: Demo): Promise<SiteCamera[]> {
  const { checks, out } = demo;
  out.step(4, "National view at kz");
  const startMs = out.elapsedMs();
  const cameras = await waitForNationalView(demo, `${EXPECTED_TOTAL} cameras at ${ROOT}`, (view) => view.length >= EXPECTED_TOTAL);
  out.line(`${ROOT} holds ${cameras.length} cameras, ${seconds(out.elapsedMs() - startMs)} after the last import`);
  out.line();
  out.lines(nationalTable(summarise(cameras)));
  const counts = SITES.map(({ site }) => cameras.filter((c) => c.site === site).length);
  const expected = SITES.every((s, i) => counts[i] === s.cameras) && cameras.length === EXPECTED_TOTAL;
  checks.record("cameras", expected, `${counts.join(" + ")} = ${cameras.length}`);
  return cameras;
}

/**
 * Step 5: stops the region, changes the site's inventory while its parent is gone, shows
 * that the site keeps working and that the national node keeps the old view.
 */
async function runOutage(demo: Demo, before: SiteCamera[]): Promise<Outage> {
  const { cluster, out } = demo;
  out.step(5, `Outage: stop ${OUTAGE.region}, change ${OUTAGE.site} meanwhile`);
  const site = cluster.node(OUTAGE.site);
  const settled = await waitForStatus(demo, site, "everything acknowledged by its parent", (s) => s.parent?.pending === 0);
  const sentBefore = settled.parent?.sent ?? 0;
  out.line(`${OUTAGE.site} has sent ${sentBefore} changes to ${OUTAGE.region}, 0 waiting`);
  out.line(`${OUTAGE.region} stopped (${await cluster.node(OUTAGE.region).stop()})`);
  const change = await writeChangedInventory(resolve(REPO_ROOT, OUTAGE.inventory), cluster.inventoryDir);
  out.line(`wrote ${shown(change.file)}: ${describeInventoryChange(change)}`);
  out.line(`${OUTAGE.site} ${await site.importCameras(shown(change.file))}`);
  const offline = await waitForStatus(
    demo,
    site,
    `its parent link to drop with ${EXPECTED_RESENT} changes waiting`,
    (s) => s.parent?.state !== "connected" && s.parent?.pending === EXPECTED_RESENT,
  );
  out.line();
  out.line(`$ vmtree status --data ${shown(site.dataDir)}`);
  out.lines((await site.statusText()).trimEnd().split("\n"), 2);
  const during = await fetchNationalView(demo);
  out.line();
  out.line(`national view while ${OUTAGE.region} is down:`);
  out.lines(nationalTable(summarise(during)));
  const unchanged = describeChanges(before, during).length === 0;
  demo.checks.record(
    "autonomy",
    unchanged && offline.parent?.pending === EXPECTED_RESENT,
    `import done offline, ${offline.parent?.pending} waiting, national ${unchanged ? "unchanged" : "CHANGED"}`,
  );
  return { change, sentBefore };
}

/** Step 6: restarts the region and waits until the national view shows the site's changes. */
async function reconnect(demo: Demo, before: SiteCamera[], { change, sentBefore }: Outage): Promise<void> {
  const { cluster, checks, out } = demo;
  out.step(6, `Reconnect: restart ${OUTAGE.region}`);
  const region = cluster.node(OUTAGE.region);
  const oldAddress = region.address;
  const address = await region.serve();
  out.line(`${OUTAGE.region} serving again on ${address} (${address === oldAddress ? "same port as before" : `was ${oldAddress}`})`);
  const startMs = out.elapsedMs();
  const after = await waitForNationalView(demo, `${OUTAGE.site}'s changes at ${ROOT}`, (view) => showsChange(view, change));
  const took = seconds(out.elapsedMs() - startMs);
  out.line(`${ROOT} converged ${took} after the restart`);
  const count = after.filter((c) => c.site === OUTAGE.site).length;
  checks.record("convergence", true, `${OUTAGE.site} back at ${count} cameras with the ${EXPECTED_RESENT} changes, ${took} after the restart`);
  out.line();
  out.lines(nationalTable(summarise(after)));
  out.line();
  out.line("what changed at national:");
  out.lines(describeChanges(before, after), 2);
  const site = cluster.node(OUTAGE.site);
  const status = await waitForStatus(demo, site, "its parent link to be connected with 0 waiting", (s) => isConnected(s) && s.parent?.pending === 0);
  out.line();
  out.line(`$ vmtree status --data ${shown(site.dataDir)}`);
  out.lines((await site.statusText()).split("\n").filter((line) => line.startsWith("parent")), 2);
  const sentAfter = status.parent?.sent ?? 0;
  out.line(`${OUTAGE.site} had sent ${sentBefore} changes before the outage and ${sentAfter} now: ${sentAfter - sentBefore} after the reconnect`);
  checks.record("resent", sentAfter - sentBefore === EXPECTED_RESENT, `parent.sent ${sentBefore} before, ${sentAfter} after: ${sentAfter - sentBefore}`);
}

/**
 * Step 7: the national node authors an access policy for the whole tree (R-6.3); it flows
 * down to every node, and a site decides requests from it locally, each decision audited.
 */
async function distributePolicy(demo: Demo): Promise<void> {
  const { cluster, checks, out, signal } = demo;
  out.step(7, `Access policy: authored at ${ROOT}, decided at ${POLICY_SITE}`);
  const national = cluster.node(ROOT);
  const file = await writeDemoPolicy(cluster.dir, Date.now());
  out.line(`$ vmtree policy apply --data ${shown(national.dataDir)} ${shown(file)}`);
  const startMs = out.elapsedMs();
  out.lines((await national.applyPolicy(shown(file))).split("\n"), 2);
  const status = await waitFor(
    async () => {
      const current = await national.policyStatus();
      return current.nodes.length === NODES && current.nodes.every((n) => !n.behind) ? current : undefined;
    },
    { what: `every node to apply ${ROOT}'s policy`, timeoutMs: WAIT_MS, signal },
  );
  const took = seconds(out.elapsedMs() - startMs);
  const version = status.current.find((v) => v.author === ROOT)?.version;
  out.line(`${status.nodes.length} of ${NODES} nodes applied ${ROOT} version ${version}, as ${ROOT} saw it ${took} after the apply`);
  checks.record("policyFlow", status.nodes.length === NODES, `${status.nodes.length} nodes at ${ROOT} v${version}, ${took} after the apply`);
  out.line();
  const site = cluster.node(POLICY_SITE);
  const rows: string[][] = [];
  let right = 0;
  for (const expected of EXPECTED_DECISIONS) {
    const decision = await site.authorize(expected.user, expected.action, POLICY_CAMERA);
    const matches = decision.decision === expected.decision && decision.binding === expected.binding;
    if (matches) right++;
    rows.push([expected.user, expected.action, decision.decision.toUpperCase(), decision.binding ? `${decision.binding} (${decision.origin} v${decision.version})` : "none (default deny)", matches ? "as expected" : `EXPECTED ${expected.decision}`]);
  }
  out.line(`$ vmtree authorize --data ${shown(site.dataDir)} --user USER --action ACTION --camera ${POLICY_CAMERA}`);
  out.lines(formatTable(["USER", "ACTION", "DECISION", "BINDING", ""], rows));
  checks.record("decisions", right === EXPECTED_DECISIONS.length, `${right} of ${EXPECTED_DECISIONS.length} as expected, each audited at ${POLICY_SITE}`);
}

/**
 * Step 8: the national node asks for a site's recording with a reason (R-28); it travels up
 * hop by hop, the site's link is cut in the middle of the first hop, and the upload resumes
 * from the parent's offset once the link is back. The copy exported at the national node is
 * the site's file, byte for byte.
 */
async function moveFragment(demo: Demo): Promise<void> {
  const { cluster, checks, out, signal } = demo;
  out.step(8, `Video fragment: requested at ${ROOT} from ${FRAGMENT.site}, link cut mid-transfer`);
  const site = cluster.node(FRAGMENT.site);
  const region = cluster.node(site.parentSite!);
  const national = cluster.node(ROOT);
  out.line(`$ vmtree limit --data ${shown(region.dataDir)} --site ${site.site} --bandwidth ${FRAGMENT.cap}`);
  out.lines((await region.limit(site.site, FRAGMENT.cap)).split("\n"), 2);
  await waitFor(async () => ((await site.transfers()).cap_source === "parent" ? true : undefined), { what: `${site.site} to apply the cap`, timeoutMs: WAIT_MS, signal });
  const { recording } = FRAGMENT;
  out.line(`$ vmtree fragments add --data ${shown(site.dataDir)} --camera ${recording.camera} --file ${recording.file} --start ${recording.start} --end ${recording.end}`);
  const added = await site.addFragment(recording);
  out.line(`  fragment ${added.id}: ${added.size} bytes, sha256 ${added.sha256}`);
  const ask: FragmentAsk = { site: site.site, camera: recording.camera, from: "2026-11-20T08:00:00Z", to: "2026-11-20T09:00:00Z", reason: "incident report 17/2026", requestedBy: "user:duty-officer" };
  out.line(`$ vmtree fragments request --data ${shown(national.dataDir)} --site ${ask.site} --camera ${ask.camera} --from ${ask.from} --to ${ask.to} --reason "${ask.reason}" --requested-by ${ask.requestedBy}`);
  out.line(`  request ${(await national.requestFragments(ask)).id} recorded`);
  const upload = (transfers: Transfers) => transfers.transfers.find((t) => t.fragment_id === added.id && t.direction === "up");
  const cutAt = await waitFor(
    async () => {
      const job = upload(await site.transfers());
      return job && job.bytes_done >= FRAGMENT.cutAt * added.size ? job.bytes_done : undefined;
    },
    { what: `${site.site}'s upload to reach ${FRAGMENT.cutAt * 100}%`, timeoutMs: WAIT_MS, signal },
  );
  const proxy = cluster.linkProxy(site.site);
  proxy.pause();
  out.line();
  out.line(`link cut: ${site.site}'s connections to ${region.site} destroyed and refused, ${cutAt} of ${added.size} bytes acknowledged`);
  await sleep(FRAGMENT.downMs, undefined, { signal });
  out.line(`$ vmtree transfers --data ${shown(site.dataDir)}`);
  out.lines((await site.transfersText()).trimEnd().split("\n"), 2);
  proxy.resume();
  out.line(`link restored after ${seconds(FRAGMENT.downMs)}`);
  const startMs = out.elapsedMs();
  await waitFor(async () => ((await national.listFragments()).some((f) => f.id === added.id) ? true : undefined), {
    what: `${added.id} at ${ROOT}`,
    timeoutMs: WAIT_MS,
    signal,
  });
  out.line(`${added.id} held at ${ROOT} ${seconds(out.elapsedMs() - startMs)} after the link came back`);
  out.line(`$ vmtree transfers --data ${shown(site.dataDir)}`);
  out.lines((await site.transfersText()).trimEnd().split("\n"), 2);
  const exportDir = join(cluster.dir, "exports");
  await mkdir(exportDir, { recursive: true });
  const exported = join(exportDir, basename(recording.file));
  out.line(`$ vmtree fragments export --data ${shown(national.dataDir)} --id ${added.id} --out ${shown(exported)}`);
  out.lines((await national.exportFragment(added.id, shown(exported))).split("\n"), 2);
  const [copy, original] = await Promise.all([readFile(exported), readFile(resolve(REPO_ROOT, recording.file))]);
  const sha256 = createHash("sha256").update(copy).digest("hex");
  checks.record("fragment", copy.equals(original) && sha256 === added.sha256, `${copy.length} bytes exported at ${ROOT}, sha256 ${sha256 === added.sha256 ? "matches" : "DIFFERS FROM"} the site's`);
  const sent = upload(await site.transfers());
  const resent = sent?.resent_bytes ?? -1;
  checks.record(
    "fragmentResent",
    sent?.state === "done" && sent.attempts >= 2 && resent >= 0 && resent <= CHUNK_BYTES,
    `${resent} bytes re-sent over ${sent?.attempts ?? 0} attempts (one chunk is ${CHUNK_BYTES})`,
  );
}

/**
 * Step 9: the national node holds the audit log of every node (R-6.4): each chain verified
 * entry by entry, and the record of the import made during the outage arrived like the
 * cameras did, hop by hop.
 */
async function verifyNationalAudit(demo: Demo): Promise<void> {
  const { cluster, checks, out, signal } = demo;
  out.step(9, `Audit: every node's log at ${ROOT}, verified`);
  const national = cluster.node(ROOT);
  const imports = await waitFor(
    async () => {
      const entries = await national.listAudit(OUTAGE.site, "inventory.import");
      return entries.length >= 2 ? entries : undefined;
    },
    { what: `${OUTAGE.site}'s offline import in the audit log at ${ROOT}`, timeoutMs: WAIT_MS, signal },
  );
  const offline = imports.at(-1)!;
  out.line(`${OUTAGE.site}'s import during the outage, as recorded at ${ROOT}:`);
  out.lines([`${offline.time}  ${offline.origin} #${offline.seq}  ${offline.actor}  ${offline.action}  ${offline.result}  ${JSON.stringify(offline.details)}`], 2);
  out.line();
  out.line(`$ vmtree audit verify --data ${shown(national.dataDir)}`);
  const chains = await national.verifyAudit();
  const rows = chains.map((c) => [c.origin, String(c.epoch), String(c.entries), `${c.firstSeq}..${c.lastSeq}`, `${c.headHash.slice(0, 16)}…`, c.ok && !c.quarantined ? "OK" : `BAD at ${c.badSeq}: ${c.reason ?? c.quarantined}`]);
  out.lines(formatTable(["ORIGIN", "EPOCH", "ENTRIES", "SEQ", "HEAD", "VERIFIED"], rows, ["left", "right", "right", "right"]));
  const verified = chains.filter((c) => c.ok && !c.quarantined).length;
  const origins = new Set(chains.map((c) => c.origin)).size;
  checks.record(
    "audit",
    origins === NODES && verified === chains.length,
    `${verified} of ${chains.length} chains OK, ${origins} of ${NODES} nodes; the offline import (${offline.result}) among them`,
  );
}

/** Step 10, first half: stops every node and says how each one ended. */
async function stopAll(cluster: Cluster, out: Output): Promise<void> {
  for (const { site, how } of await cluster.close()) out.line(`${site.padEnd(16)} ${how}`);
}

function isConnected(status: NodeStatus): boolean {
  return status.parent?.state === "connected";
}

/** True when `view` holds the site's inventory as changed during the outage, and nothing older. */
function showsChange(view: readonly SiteCamera[], change: InventoryChange): boolean {
  const cameras = new Map(view.filter((c) => c.site === OUTAGE.site).map((c) => [c.camera_id, c]));
  const modified = cameras.get(change.modified.after.camera_id);
  return (
    cameras.size === OUTAGE.cameras &&
    modified?.fps === change.modified.after.fps &&
    modified.bitrate_kbps === change.modified.after.bitrate_kbps &&
    !cameras.has(change.removed.camera_id) &&
    cameras.has(change.added.camera_id)
  );
}

function describeInventoryChange({ modified, removed, added }: InventoryChange): string {
  const { before, after } = modified;
  const raised = [
    before.fps !== after.fps ? `${before.fps} → ${after.fps} fps` : "",
    before.bitrate_kbps !== after.bitrate_kbps ? `${before.bitrate_kbps} → ${after.bitrate_kbps} kbit/s` : "",
  ].filter(Boolean);
  return `${after.camera_id} ${raised.join(", ")}; ${removed.camera_id} removed; ${added.camera_id} added`;
}

/** Records whether any national view fetched held a stream URL with credentials. */
function checkCredentials(checks: Demo["checks"], views: readonly SiteCamera[][]): void {
  if (views.length === 0) return;
  const urls = views.reduce((sum, view) => sum + view.length, 0);
  const leaked = views.flatMap((view) => withCredentials(view));
  const example = leaked[0] ? `, e.g. ${leaked[0].site}/${leaked[0].camera_id}` : "";
  checks.record("credentials", leaked.length === 0, `${leaked.length} of ${urls} URLs hold \`@\`${example} (${views.length} national views)`);
}

/** The national node's cameras, also kept for the credentials check. */
async function fetchNationalView(demo: Demo): Promise<SiteCamera[]> {
  const view = await demo.cluster.node(ROOT).listCameras();
  demo.nationalViews.push(view);
  return view;
}

/** Polls the national view (about every 100 ms, at most 30 s) until `done` holds. */
function waitForNationalView(demo: Demo, what: string, done: (view: SiteCamera[]) => boolean): Promise<SiteCamera[]> {
  return waitFor(
    async () => {
      const view = await fetchNationalView(demo);
      return done(view) ? view : undefined;
    },
    { what, timeoutMs: WAIT_MS, signal: demo.signal },
  );
}

/** Polls `node`'s status (about every 100 ms, at most 30 s) until `done` holds. */
function waitForStatus(demo: Demo, node: DemoNode, what: string, done: (status: NodeStatus) => boolean): Promise<NodeStatus> {
  return waitFor(
    async () => {
      const status = await node.status();
      return done(status) ? status : undefined;
    },
    { what: `${node.site}: ${what}`, timeoutMs: WAIT_MS, signal: demo.signal },
  );
}
