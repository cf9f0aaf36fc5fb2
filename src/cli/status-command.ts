import { parseVerbArgs, required } from "./args.ts";
import { printHelp, withAdmin, type Command } from "./command.ts";
import { statusJson, statusText } from "./format.ts";

export const statusCommand: Command = {
  name: "status",
  synopsis: "status --data DIR [--json]",
  summary:
    "Shows this node (site id, epoch, listen address), its parent link (connected, or disconnected\n" +
    "since when; last sync; changes and audit entries waiting), each child's link, camera counts and\n" +
    "audit quarantines, and the policies held (versions, age). Works whether the node runs or not.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const result = await withAdmin(required(values, "data"), (admin) => admin.getStatus({}));
    out.stdout(values.json ? `${JSON.stringify(statusJson(result), null, 2)}\n` : statusText(result));
    return 0;
  },
};
