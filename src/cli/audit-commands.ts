import { VmtreeError } from "../errors.ts";
import { DataDir } from "../node/data-dir.ts";
import { assertSiteId } from "../pki/site-id.ts";
import { parseCount, parseDuration, parseTime, parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";
import { auditEntriesText, auditEntryJson, chainJson, chainsText } from "./format.ts";

/** An empty filter would silently match everything. */
const nonEmpty = (flag: string, value: string | undefined) => {
  if (value === "") throw new UsageError(`expected --${flag} to name what to match, got an empty value`);
  return value ?? "";
};

const optionalSite = (site: string | undefined) => (site === undefined ? "" : checkFlag(() => assertSiteId(site)));

export const auditVerifyCommand: Command = {
  name: "audit verify",
  synopsis: "audit verify --data DIR [--site ID] [--json]",
  summary:
    "Verifies every audit chain this node holds (its own and its subtree's, or --site's subtree):\n" +
    "per origin and epoch, the entries, first and last sequence, head hash, and OK or the first bad\n" +
    "sequence and why. Exits 1 when any chain is bad or quarantined.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = optionalSite(values.site);
    const { chains } = await withAdmin(required(values, "data"), (admin) => admin.verifyAudit({ site }));
    out.stdout(values.json ? `${JSON.stringify(chains.map(chainJson), null, 2)}\n` : chainsText(chains));
    return chains.every((chain) => chain.ok && !chain.quarantined) ? 0 : 1;
  },
};

export const auditListCommand: Command = {
  name: "audit list",
  synopsis: "audit list --data DIR [--site ID] [--since T] [--until T] [--actor A] [--action X] [--limit N] [--json]",
  summary:
    "Lists audit entries, oldest first per origin. T is an ISO date or date-time; --action matches an\n" +
    "action or a dotted prefix (`inventory` matches `inventory.import`).",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, {
      data: { type: "string" }, site: { type: "string" }, since: { type: "string" }, until: { type: "string" },
      actor: { type: "string" }, action: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" },
    }, 0);
    if (values.help) return printHelp(this, out);
    const request = {
      site: optionalSite(values.site),
      since_ms: values.since === undefined ? 0 : parseTime("since", values.since),
      until_ms: values.until === undefined ? 0 : parseTime("until", values.until),
      actor: nonEmpty("actor", values.actor),
      action: nonEmpty("action", values.action),
      limit: values.limit === undefined ? 0 : parseCount("limit", values.limit),
    };
    const { entries } = await withAdmin(required(values, "data"), (admin) => admin.listAudit(request));
    out.stdout(values.json ? `${JSON.stringify(entries.map(auditEntryJson), null, 2)}\n` : auditEntriesText(entries));
    return 0;
  },
};

export const auditRecordCommand: Command = {
  name: "audit record",
  synopsis: "audit record --data DIR --actor user:NAME --action X.Y --target T [--result ok|refused|failed] [--details JSON]",
  summary: "Records an action of the site's own video system (a user viewing a camera, say) in the audit log.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, {
      data: { type: "string" }, actor: { type: "string" }, action: { type: "string" }, target: { type: "string" },
      result: { type: "string" }, details: { type: "string" },
    }, 0);
    if (values.help) return printHelp(this, out);
    const request = {
      actor: required(values, "actor"),
      action: required(values, "action"),
      target: required(values, "target"),
      result: values.result ?? "ok",
      details: values.details ?? "",
    };
    const { entry } = await withAdmin(required(values, "data"), (admin) => admin.recordAudit(request));
    out.stdout(`recorded ${entry!.origin} #${entry!.seq} (epoch ${entry!.epoch}) ${entry!.hash}\n`);
    return 0;
  },
};

export const auditResolveCommand: Command = {
  name: "audit resolve",
  synopsis: "audit resolve --data DIR --site ORIGIN",
  summary:
    "Lifts the quarantine of ORIGIN's audit stream on this node: the entry that broke the chain is\n" +
    "accepted as a new anchor when the child sends it again, and the resolution is recorded.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const { resolved } = await withAdmin(required(values, "data"), (admin) => admin.resolveAuditQuarantine({ origin: site }));
    if (!resolved) throw new VmtreeError("not_found", `the audit stream of ${site} is not quarantined here`);
    out.stdout(`lifted the quarantine of ${site}; the child resends and the break is recorded\n`);
    return 0;
  },
};

export const auditPruneCommand: Command = {
  name: "audit prune",
  synopsis: "audit prune --data DIR [--retention 90d]",
  summary:
    "Deletes audit entries older than the retention (node.json auditRetentionDays, default 90 days,\n" +
    "or --retention for this run) that the parent has stored; a root keeps at least 7 years. The\n" +
    "deletion is itself recorded. A running node does this every hour.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, retention: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    const request = values.retention === undefined ? {} : { retention_ms: parseDuration("retention", values.retention, { allowZero: true }) };
    const dir = required(values, "data");
    const { deleted } = await withAdmin(dir, (admin) => admin.pruneAudit(request));
    const root = (await new DataDir(dir).readConfig()).parent === undefined;
    out.stdout(`deleted ${deleted} audit ${deleted === 1 ? "entry" : "entries"} past retention${root ? " (a root keeps every entry at least 7 years)" : " that the parent has stored"}\n`);
    return 0;
  },
};

