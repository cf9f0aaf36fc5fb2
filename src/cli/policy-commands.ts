import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { VmtreeError } from "../errors.ts";
import { checkAuthorizeRequest } from "../node/policy-operations.ts";
import { assertSiteId } from "../pki/site-id.ts";
import { MAX_POLICY_BYTES } from "../policy/policy-document.ts";
import { isPolicyAction, unknownAction } from "../policy/policy-rules.ts";
import { parseTime, parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";
import { authorizeText, policyApplyText, policyChangeJson, policySetJson, policyShowText, policyStateJson, policyStatusJson, policyStatusText } from "./policy-format.ts";

export const policyApplyCommand: Command = {
  name: "policy apply",
  synopsis: "policy apply --data DIR FILE [--json]",
  summary:
    "Makes FILE (YAML, or JSON when it ends in .json) this node's policy set for its subtree, as a new\n" +
    "version that flows down to every node below, and prints what changed. A file with any error is\n" +
    "refused whole, naming the file, line, binding, field and value; a file equal to the set in force\n" +
    "changes nothing.",
  async run(argv, out) {
    const { values, positionals } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 1, "FILE");
    if (values.help) return printHelp(this, out);
    const file = positionals[0]!;
    const cannotRead = (cause: unknown): never => {
      throw new VmtreeError("invalid_input", `cannot read ${file}: ${(cause as Error).message}`, { cause });
    };
    const { size } = await stat(file).catch(cannotRead);
    if (size > MAX_POLICY_BYTES) throw new VmtreeError("invalid_input", `${basename(file)}: the file is larger than ${MAX_POLICY_BYTES} bytes`);
    const content = await readFile(file).catch(cannotRead);
    const result = await withAdmin(required(values, "data"), (admin) => admin.applyPolicy({ file_name: basename(file), content }));
    if (values.json) {
      const json = { ...policySetJson(result.set!), previousVersion: result.previous_version, changes: result.changes.map(policyChangeJson) };
      out.stdout(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      out.stdout(policyApplyText(file, result));
    }
    return 0;
  },
};

export const policyShowCommand: Command = {
  name: "policy show",
  synopsis: "policy show --data DIR [--json]",
  summary:
    "Shows the policy sets in force on this node, ancestors first: the inherited ones (read-only here)\n" +
    "and this node's own, each with its version, and how old the policies are.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const result = await withAdmin(required(values, "data"), (admin) => admin.showPolicy({}));
    if (values.json) {
      const json = {
        sets: result.sets.map((held) => ({ ...policySetJson(held.set!), source: held.source, receivedAt: new Date(held.received_ms).toISOString() })),
        state: policyStateJson(result.state!),
      };
      out.stdout(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      out.stdout(policyShowText(result));
    }
    return 0;
  },
};

export const policyStatusCommand: Command = {
  name: "policy status",
  synopsis: "policy status --data DIR [--json]",
  summary:
    "Shows, for this node and every node of its subtree known here, the version of each policy set it\n" +
    "applied and when, and flags the nodes behind the latest versions held here.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const result = await withAdmin(required(values, "data"), (admin) => admin.getPolicyStatus({}));
    out.stdout(values.json ? `${JSON.stringify(policyStatusJson(result), null, 2)}\n` : policyStatusText(result));
    return 0;
  },
};

export const authorizeCommand: Command = {
  name: "authorize",
  synopsis: "authorize --data DIR --user U --action A --camera C [--site S] [--at TIME] [--json]",
  summary:
    "Decides whether user U may do action A on camera C of site S (default: this node), now or at TIME,\n" +
    "from the policies held here (also while the parent is unreachable), and names the deciding binding,\n" +
    "its author and version. The decision is audited. Exits 0 on allow, 1 on deny (or failure), 2 on a\n" +
    "malformed request.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, {
      data: { type: "string" }, user: { type: "string" }, action: { type: "string" }, camera: { type: "string" },
      site: { type: "string" }, at: { type: "string" }, json: { type: "boolean" },
    }, 0);
    if (values.help) return printHelp(this, out);
    const action = required(values, "action");
    if (!isPolicyAction(action)) throw new UsageError(`--action ${unknownAction(action)}`);
    const request = {
      user: required(values, "user"),
      action,
      camera: required(values, "camera"),
      site: values.site === undefined ? "" : checkFlag(() => assertSiteId(values.site!)),
      at_ms: values.at === undefined ? 0 : parseTime("at", values.at),
    };
    // A malformed request is a usage error here, so that exit 1 always means a deny or a failure.
    checkFlag(() => checkAuthorizeRequest(request));
    const result = await withAdmin(required(values, "data"), (admin) => admin.authorize(request));
    if (values.json) {
      const json = { decision: result.decision, binding: result.binding || null, origin: result.origin || null, version: result.version || null, reason: result.reason, policyAgeMs: result.policy_age_ms };
      out.stdout(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      out.stdout(authorizeText(result));
    }
    return result.decision === "allow" ? 0 : 1;
  },
};
