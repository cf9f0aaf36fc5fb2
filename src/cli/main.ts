import { VmtreeError } from "../errors.ts";
import { UsageError } from "./args.ts";
import { auditListCommand, auditPruneCommand, auditRecordCommand, auditResolveCommand, auditVerifyCommand } from "./audit-commands.ts";
import { camerasImportCommand, camerasListCommand } from "./camera-commands.ts";
import type { Command, Out } from "./command.ts";
import { initCommand, inviteCommand, joinCommand } from "./enrolment-commands.ts";
import { fragmentsAddCommand, fragmentsExportCommand, fragmentsListCommand, fragmentsRequestCommand, fragmentsRequestsCommand } from "./fragment-commands.ts";
import { limitCommand } from "./limit-command.ts";
import { authorizeCommand, policyApplyCommand, policyShowCommand, policyStatusCommand } from "./policy-commands.ts";
import { revokeCommand } from "./revoke-command.ts";
import { serveCommand } from "./serve-command.ts";
import { statusCommand } from "./status-command.ts";
import { transfersCommand } from "./transfers-command.ts";

const COMMANDS: readonly Command[] = [
  initCommand,
  inviteCommand,
  joinCommand,
  revokeCommand,
  serveCommand,
  statusCommand,
  camerasImportCommand,
  camerasListCommand,
  auditVerifyCommand,
  auditListCommand,
  auditRecordCommand,
  auditResolveCommand,
  auditPruneCommand,
  policyApplyCommand,
  policyShowCommand,
  policyStatusCommand,
  authorizeCommand,
  fragmentsAddCommand,
  fragmentsListCommand,
  fragmentsExportCommand,
  fragmentsRequestCommand,
  fragmentsRequestsCommand,
  limitCommand,
  transfersCommand,
];

/** Verbs that group sub-verbs (`cameras import`). */
const GROUPS = new Set(COMMANDS.filter((c) => c.name.includes(" ")).map((c) => c.name.split(" ")[0]!));

const VERSION = "0.1.0";

function usage(commands: readonly Command[]): string {
  const intro = commands.length === COMMANDS.length ? "vmtree: join a video-surveillance site to a national tree of sites\n\n" : "";
  return (
    `${intro}Usage:\n${commands.map((c) => `  vmtree ${c.synopsis}`).join("\n")}\n\n` +
    "Run `vmtree COMMAND --help` for what a command does. Commands that read or change a node use the\n" +
    "running node's admin socket when it runs and its data directory directly when it does not.\n" +
    "Exit codes: 0 success, 1 operation failed, 2 usage error.\n"
  );
}

const defaultOut: Out = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), isTTY: process.stdout.isTTY === true };

/** Runs the CLI with `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: string[], out: Out = defaultOut): Promise<number> {
  try {
    return await dispatch(argv, out);
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr(`vmtree: ${error.message}\nRun \`vmtree --help\` for usage.\n`);
      return 2;
    }
    out.stderr(`vmtree: ${VmtreeError.from(error).message}\n`);
    return 1;
  }
}

async function dispatch(argv: string[], out: Out): Promise<number> {
  const [verb, sub, ...rest] = argv;
  if (verb === undefined || verb === "help" || verb === "--help" || verb === "-h") {
    // Called with nothing is a usage error: the usage goes where errors go.
    if (verb === undefined) {
      out.stderr(usage(COMMANDS));
      return 2;
    }
    out.stdout(usage(COMMANDS));
    return 0;
  }
  if (verb === "--version") {
    out.stdout(`vmtree ${VERSION}\n`);
    return 0;
  }
  if (GROUPS.has(verb)) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${verb} `));
    const command = group.find((c) => c.name === `${verb} ${sub}`);
    if (command) return command.run(rest, out);
    if (sub === "--help" || sub === "-h") {
      out.stdout(usage(group));
      return 0;
    }
    throw new UsageError(
      sub === undefined ? `expected one of: ${group.map((c) => `\`${c.name}\``).join(", ")}` : `unknown command \`${verb} ${sub}\``,
    );
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (!command) throw new UsageError(`unknown command \`${verb}\``);
  return command.run(argv.slice(1), out);
}
