import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { VmtreeError } from "../errors.ts";
import { MAX_IMPORT_BYTES } from "../node/admin-operations.ts";
import { assertSiteId } from "../pki/site-id.ts";
import { parseVerbArgs, required } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";
import { cameraJson, camerasText } from "./format.ts";

export const camerasImportCommand: Command = {
  name: "cameras import",
  synopsis: "cameras import --data DIR FILE",
  summary:
    "Makes FILE (UTF-8 CSV with , or ;, or a JSON export) the site's complete inventory: cameras are\n" +
    "added, updated, and deleted when missing from FILE. A file with any error is refused whole.",
  async run(argv, out) {
    const { values, positionals } = parseVerbArgs(argv, { data: { type: "string" } }, 1, "FILE");
    if (values.help) return printHelp(this, out);
    const file = positionals[0]!;
    const cannotRead = (cause: unknown): never => {
      throw new VmtreeError("invalid_input", `cannot read ${file}: ${(cause as Error).message}`, { cause });
    };
    // Checked here, with the node's own limit and words: sent to a running node, a larger file
    // would only meet gRPC's message limit, whose error names no file.
    const { size } = await stat(file).catch(cannotRead);
    if (size > MAX_IMPORT_BYTES) throw new VmtreeError("invalid_input", `${basename(file)}: the file is larger than ${MAX_IMPORT_BYTES} bytes`);
    const content = await readFile(file).catch(cannotRead);
    const counts = await withAdmin(required(values, "data"), (admin) => admin.importCameras({ file_name: basename(file), content }));
    out.stdout(`imported ${file}: ${counts.added} added, ${counts.changed} changed, ${counts.removed} removed, ${counts.unchanged} unchanged\n`);
    return 0;
  },
};

export const camerasListCommand: Command = {
  name: "cameras list",
  synopsis: "cameras list --data DIR [--site ID] [--json]",
  summary:
    "Lists the cameras of this node and its subtree (with --site, of that site and its subtree).\n" +
    "--json prints one array of objects with the inventory's field names plus `site`. Stream URLs\n" +
    "never carry credentials.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = values.site === undefined ? "" : checkFlag(() => assertSiteId(values.site!));
    const result = await withAdmin(required(values, "data"), (admin) => admin.listCameras({ site }));
    const list = result.cameras.flatMap((c) => (c.camera ? [cameraJson(c.site, c.camera)] : []));
    out.stdout(values.json ? `${JSON.stringify(list, null, 2)}\n` : camerasText(result.cameras));
    if (site && list.length === 0) out.stderr(`vmtree: note: no cameras of ${site} or its subtree are held here\n`);
    return 0;
  },
};

