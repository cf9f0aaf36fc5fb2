import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { VmtreeError } from "../errors.ts";
import { connectAdmin, type NodeAdmin } from "../node/admin-client.ts";
import { initRoot, joinParent } from "../node/enrolment.ts";
import { VmtreeNode } from "../node/node.ts";
import { parseCount, parseDuration, parseTime, parseVerbArgs, required, UsageError } from "./args.ts";
import { auditEntriesText, auditEntryJson, cameraJson, camerasText, chainJson, chainsText, statusJson, statusText } from "./format.ts";

const USAGE = `vmtree: join a video-surveillance site to a national tree of sites

Usage:
  vmtree init --data DIR --site ID --listen HOST:PORT [--advertise HOST:PORT]
  vmtree invite --data DIR --site CHILD_ID [--ttl 24h]
  vmtree join --data DIR --token TOKEN [--listen HOST:PORT] [--advertise HOST:PORT]
  vmtree serve --data DIR [--parent HOST:PORT]
  vmtree status --data DIR [--json]
  vmtree cameras import --data DIR FILE
  vmtree cameras list --data DIR [--site ID] [--json]
  vmtree audit verify --data DIR [--site ID] [--json]
  vmtree audit list --data DIR [--site ID] [--since T] [--until T] [--actor A] [--action X] [--limit N] [--json]
  vmtree audit record --data DIR --actor user:NAME --action X.Y --target T [--result ok|refused|failed] [--details JSON]
  vmtree audit resolve --data DIR --site ORIGIN
  vmtree audit prune --data DIR [--retention 90d]

  init     create a root (national) node and the tree's root CA in DIR
  invite   print a single-use join token for a direct child (and nothing else)
  join     enrol DIR as a child of the node that issued TOKEN
  serve    run the node: serve children, keep the link to the parent
  status   this node, its parent link and its children
  cameras  import this site's inventory (CSV or JSON), list the subtree's cameras
  audit    verify and query the hash-chained audit logs of this node and its subtree,
           record an action of the site's video system, lift a quarantine, apply retention

Commands that change or read a node use the running node's admin socket when it
is running and the data directory directly when it is not.
Exit codes: 0 success, 1 operation failed, 2 usage error.
`;

type Out = { stdout: (text: string) => void; stderr: (text: string) => void };
const defaultOut: Out = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };

/** Runs the CLI with `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: string[], out: Out = defaultOut): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    switch (verb) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out.stdout(USAGE);
        return verb === undefined ? 2 : 0;
      case "init":
        return await init(rest, out);
      case "invite":
        return await invite(rest, out);
      case "join":
        return await join(rest, out);
      case "serve":
        return await serve(rest, out);
      case "status":
        return await status(rest, out);
      case "cameras":
        return await cameras(rest, out);
      case "audit":
        return await audit(rest, out);
      default:
        throw new UsageError(`unknown command \`${verb}\``);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr(`vmtree: ${error.message}\nRun \`vmtree --help\` for usage.\n`);
      return 2;
    }
    out.stderr(`vmtree: ${VmtreeError.from(error).message}\n`);
    return 1;
  }
}

function helpFor(values: { help?: boolean | undefined }, out: Out): boolean {
  if (values.help) out.stdout(USAGE);
  return values.help === true;
}

async function init(argv: string[], out: Out): Promise<number> {
  const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, listen: { type: "string" }, advertise: { type: "string" } }, 0);
  if (helpFor(values, out)) return 0;
  const result = await initRoot({ dataDir: required(values, "data"), site: required(values, "site"), listen: required(values, "listen"), advertise: values.advertise });
  out.stdout(`initialised root node ${result.site}; root CA fingerprint sha256:${result.caFingerprint}\n`);
  return 0;
}

async function invite(argv: string[], out: Out): Promise<number> {
  const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, ttl: { type: "string" } }, 0);
  if (helpFor(values, out)) return 0;
  const ttlMs = values.ttl === undefined ? 24 * 3_600_000 : parseDuration("ttl", values.ttl);
  const result = await withAdmin(required(values, "data"), (admin) => admin.createInvite({ site: required(values, "site"), ttl_seconds: Math.ceil(ttlMs / 1000) }));
  out.stdout(`${result.token}\n`);
  return 0;
}

async function join(argv: string[], out: Out): Promise<number> {
  const { values } = parseVerbArgs(argv, { data: { type: "string" }, token: { type: "string" }, listen: { type: "string" }, advertise: { type: "string" } }, 0);
  if (helpFor(values, out)) return 0;
  const result = await joinParent({
    dataDir: required(values, "data"),
    token: required(values, "token"),
    listen: values.listen ?? "127.0.0.1:0",
    advertise: values.advertise,
  });
  out.stdout(`joined ${result.parent} as ${result.site} (epoch ${result.epoch}); start it with \`vmtree serve --data ${values.data}\`\n`);
  return 0;
}

async function serve(argv: string[], out: Out): Promise<number> {
  const { values } = parseVerbArgs(argv, { data: { type: "string" }, parent: { type: "string" } }, 0);
  if (helpFor(values, out)) return 0;
  const node = await VmtreeNode.open(required(values, "data"));
  try {
    await node.serve({ parentAddress: values.parent });
  } catch (error) {
    await node.close();
    throw error;
  }
  out.stdout(`vmtree node ${node.config.site} serving on ${node.listen}\n`);
  // Repeated signals (Ctrl-C reaches the whole process group, then a supervisor's
  // SIGTERM) must not cut the bounded shutdown short, so the handlers stay until it ends.
  let stopping: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stopping = resolve));
  const onSignal = () => stopping();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await stopped;
    await node.close();
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
  out.stdout(`vmtree node ${node.config.site} stopped\n`);
  return 0;
}

async function status(argv: string[], out: Out): Promise<number> {
  const { values } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 0);
  if (helpFor(values, out)) return 0;
  const result = await withAdmin(required(values, "data"), (admin) => admin.getStatus({}));
  out.stdout(values.json ? `${JSON.stringify(statusJson(result), null, 2)}\n` : statusText(result));
  return 0;
}

async function cameras(argv: string[], out: Out): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "import") {
    const { values, positionals } = parseVerbArgs(rest, { data: { type: "string" } }, 1);
    if (helpFor(values, out)) return 0;
    const file = positionals[0]!;
    const content = await readFile(file).catch((cause: unknown) => {
      throw new VmtreeError("invalid_input", `cannot read ${file}: ${(cause as Error).message}`, { cause });
    });
    const counts = await withAdmin(required(values, "data"), (admin) => admin.importCameras({ file_name: basename(file), content }));
    out.stdout(`imported ${file}: ${counts.added} added, ${counts.changed} changed, ${counts.removed} removed, ${counts.unchanged} unchanged\n`);
    return 0;
  }
  if (sub === "list") {
    const { values } = parseVerbArgs(rest, { data: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } }, 0);
    if (helpFor(values, out)) return 0;
    const result = await withAdmin(required(values, "data"), (admin) => admin.listCameras({ site: values.site ?? "" }));
    const list = result.cameras.flatMap((c) => (c.camera ? [cameraJson(c.site, c.camera)] : []));
    out.stdout(values.json ? `${JSON.stringify(list, null, 2)}\n` : camerasText(result.cameras));
    return 0;
  }
  throw new UsageError(sub === undefined ? "expected `cameras import` or `cameras list`" : `unknown command \`cameras ${sub}\``);
}

async function audit(argv: string[], out: Out): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "verify": {
      const { values } = parseVerbArgs(rest, { data: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } }, 0);
      if (helpFor(values, out)) return 0;
      const { chains } = await withAdmin(required(values, "data"), (admin) => admin.verifyAudit({ site: values.site ?? "" }));
      out.stdout(values.json ? `${JSON.stringify(chains.map(chainJson), null, 2)}\n` : chainsText(chains));
      return chains.every((chain) => chain.ok && !chain.quarantined) ? 0 : 1;
    }
    case "list": {
      const { values } = parseVerbArgs(rest, {
        data: { type: "string" }, site: { type: "string" }, since: { type: "string" }, until: { type: "string" },
        actor: { type: "string" }, action: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" },
      }, 0);
      if (helpFor(values, out)) return 0;
      const request = {
        site: values.site ?? "",
        since_ms: values.since === undefined ? 0 : parseTime("since", values.since),
        until_ms: values.until === undefined ? 0 : parseTime("until", values.until),
        actor: values.actor ?? "",
        action: values.action ?? "",
        limit: values.limit === undefined ? 0 : parseCount("limit", values.limit),
      };
      const { entries } = await withAdmin(required(values, "data"), (admin) => admin.listAudit(request));
      out.stdout(values.json ? `${JSON.stringify(entries.map(auditEntryJson), null, 2)}\n` : auditEntriesText(entries));
      return 0;
    }
    case "record": {
      const { values } = parseVerbArgs(rest, {
        data: { type: "string" }, actor: { type: "string" }, action: { type: "string" }, target: { type: "string" },
        result: { type: "string" }, details: { type: "string" },
      }, 0);
      if (helpFor(values, out)) return 0;
      const request = {
        actor: required(values, "actor"),
        action: required(values, "action"),
        target: required(values, "target"),
        result: values.result ?? "ok",
        details: values.details ?? "",
      };
      const { entry } = await withAdmin(required(values, "data"), (admin) => admin.recordAudit(request));
      out.stdout(`recorded ${entry!.origin}#${entry!.epoch}.${entry!.seq} ${entry!.hash}\n`);
      return 0;
    }
    case "resolve": {
      const { values } = parseVerbArgs(rest, { data: { type: "string" }, site: { type: "string" } }, 0);
      if (helpFor(values, out)) return 0;
      const site = required(values, "site");
      const { resolved } = await withAdmin(required(values, "data"), (admin) => admin.resolveAuditQuarantine({ origin: site }));
      if (!resolved) throw new VmtreeError("not_found", `the audit stream of ${site} is not quarantined here`);
      out.stdout(`lifted the quarantine of ${site}; its next entry is accepted as a new anchor and the break is recorded\n`);
      return 0;
    }
    case "prune": {
      const { values } = parseVerbArgs(rest, { data: { type: "string" }, retention: { type: "string" } }, 0);
      if (helpFor(values, out)) return 0;
      const retention_ms = values.retention === undefined ? 0 : parseDuration("retention", values.retention, { allowZero: true });
      const { deleted } = await withAdmin(required(values, "data"), (admin) => admin.pruneAudit({ retention_ms }));
      out.stdout(`deleted ${deleted} audit entries past retention that the parent has stored\n`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? "expected `audit verify`, `list`, `record`, `resolve` or `prune`" : `unknown command \`audit ${sub}\``);
  }
}

async function withAdmin<T>(dataDir: string, use: (admin: NodeAdmin) => Promise<T>): Promise<T> {
  const admin = await connectAdmin(dataDir);
  try {
    return await use(admin);
  } finally {
    await admin.close();
  }
}
