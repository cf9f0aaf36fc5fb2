import { VmtreeError } from "../errors.ts";
import { connectAdmin, type NodeAdmin } from "../node/admin-client.ts";
import { UsageError } from "./args.ts";

/** Where a command writes. */
export interface Out {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether stdout is a terminal: only then may a command move the cursor. */
  readonly isTTY?: boolean;
}

/** One verb of the CLI (or one sub-verb, such as `cameras import`). */
export interface Command {
  /** `init`, `cameras import`… */
  name: string;
  /** The synopsis line after `vmtree `. */
  synopsis: string;
  /** One line saying what it does. */
  summary: string;
  /** Resolves with the exit code. */
  run(argv: string[], out: Out): Promise<number>;
}

/** Prints the help text of one command; resolves the exit code 0. */
export function printHelp(command: Command, out: Out): number {
  out.stdout(`Usage: vmtree ${command.synopsis}\n\n${command.summary}\n`);
  return 0;
}

/**
 * Runs a check of a flag's value and turns its `invalid_argument` into a usage error
 * (exit code 2), so that every bad flag value is reported the same way.
 */
export function checkFlag<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof VmtreeError && error.code === "invalid_argument") throw new UsageError(error.rawMessage);
    throw error;
  }
}

/**
 * Runs `use` against the node of `dataDir`: its socket, or its store when it is stopped and
 * `runningOnly` is not set.
 */
export async function withAdmin<T>(dataDir: string, use: (admin: NodeAdmin) => Promise<T>, options: { runningOnly?: boolean } = {}): Promise<T> {
  const admin = await connectAdmin(dataDir, undefined, options);
  try {
    return await use(admin);
  } finally {
    await admin.close();
  }
}
