import { setTimeout as sleep } from "node:timers/promises";
import type { NodeAdmin } from "../node/admin-client.ts";
import { parseVerbArgs, required } from "./args.ts";
import { printHelp, withAdmin, type Command, type Out } from "./command.ts";
import { transfersJson, transfersText } from "./transfer-format.ts";

const WATCH_INTERVAL_MS = 1_000;
/** Cursor home, then clear to the end of the screen: the next frame overwrites the last. */
const REDRAW = "\u001b[H\u001b[J";

export const transfersCommand: Command = {
  name: "transfers",
  synopsis: "transfers --data DIR [--watch] [--json]",
  summary:
    "Shows the fragment transfers of this node, uploads to its parent and downloads from its children:\n" +
    "fragment, peer, direction, priority, state, bytes done and total, rate (bits per second), ETA,\n" +
    "bytes sent again, attempts and the last error, and the cap in force on the parent link with its\n" +
    "source. --watch redraws every second with a progress bar per job until Ctrl-C or SIGTERM (plain\n" +
    "snapshots when stdout is not a terminal); with --json it prints one JSON document per line.\n" +
    "--watch follows a running node only: on a stopped node there is nothing moving to watch.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, watch: { type: "boolean" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const dataDir = required(values, "data");
    const json = values.json === true;
    if (!values.watch) {
      const result = await withAdmin(dataDir, (admin) => admin.listTransfers({}));
      out.stdout(json ? `${JSON.stringify(transfersJson(result, Date.now()), null, 2)}\n` : transfersText(result));
      return 0;
    }
    // Listening before connecting: a signal while the admin connection opens still ends the
    // watch with exit 0 instead of killing the process mid-call.
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      await withAdmin(dataDir, (admin) => watch(admin, out, json, stop.signal), { runningOnly: true });
      return 0;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};

/** Prints a frame every second until `signal` aborts. */
async function watch(admin: NodeAdmin, out: Out, json: boolean, signal: AbortSignal): Promise<void> {
  const redraw = out.isTTY === true && !json;
  while (!signal.aborted) {
    const result = await admin.listTransfers({});
    const at = Date.now();
    if (json) out.stdout(`${JSON.stringify(transfersJson(result, at))}\n`);
    else {
      const title = `transfers at ${new Date(at).toISOString()}${redraw ? " (Ctrl-C to stop)" : ""}\n`;
      out.stdout(`${redraw ? REDRAW : ""}${title}${transfersText(result, { bars: true })}${redraw ? "" : "\n"}`);
    }
    // An abort ends the wait early; the loop condition then ends the watch.
    await sleep(WATCH_INTERVAL_MS, undefined, { signal }).catch(() => undefined);
  }
}
