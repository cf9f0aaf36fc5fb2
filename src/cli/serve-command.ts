import { checkDialAddress } from "../node/address.ts";
import { VmtreeNode } from "../node/node.ts";
import { parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp, type Command } from "./command.ts";

export const serveCommand: Command = {
  name: "serve",
  synopsis: "serve --data DIR [--parent HOST:PORT]",
  summary:
    "Runs the node: serves its children, keeps the link to its parent, and serves the admin socket\n" +
    "DIR/admin.sock. --parent dials another address than the one in the join token, for this run\n" +
    "only (a proxy, a moved parent). SIGTERM or SIGINT stops it cleanly, also while it starts.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, parent: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    if (values.parent !== undefined) checkFlag(() => checkDialAddress(values.parent!, "parent"));
    // Handlers go in first: a signal while the node starts must stop it cleanly too, and
    // repeated signals (Ctrl-C reaches the whole process group, then a supervisor's
    // SIGTERM) must not cut the bounded shutdown short.
    let requestStop: () => void = () => undefined;
    const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
    process.on("SIGTERM", requestStop);
    process.on("SIGINT", requestStop);
    try {
      const node = await VmtreeNode.open(required(values, "data"));
      try {
        await node.serve({ ...(values.parent ? { parentAddress: values.parent } : {}), ...adminDrain() });
        out.stdout(`vmtree node ${node.config.site} serving on ${node.listen}\n`);
        await stopRequested;
      } finally {
        await node.close();
      }
      out.stdout(`vmtree node ${node.config.site} stopped\n`);
      return 0;
    } finally {
      process.off("SIGTERM", requestStop);
      process.off("SIGINT", requestStop);
    }
  },
};

/** VMTREE_ADMIN_DRAIN_MS: how long a stop waits for admin calls in flight (default 30 s). */
function adminDrain(): { adminDrainMs?: number } {
  const text = process.env.VMTREE_ADMIN_DRAIN_MS;
  if (text === undefined || text === "") return {};
  const ms = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(ms)) throw new UsageError(`expected VMTREE_ADMIN_DRAIN_MS to be a whole number of milliseconds, got \`${text}\``);
  return { adminDrainMs: ms };
}
