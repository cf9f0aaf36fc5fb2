import { resolve } from "node:path";
import { assertSiteId } from "../pki/site-id.ts";
import { formatBytes } from "../transfer/bandwidth.ts";
import { isCameraId, isFragmentId, MAX_CLOCK_AHEAD_MS } from "../transfer/fragment-meta.ts";
import { MAX_REASON_CHARS, MAX_REQUESTED_BY_CHARS } from "../transfer/fragment-requests.ts";
import { parseTime, parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";
import { addedJson, addedText, fragmentJson, fragmentsText, requestedText, requestJson, requestStateJson, requestsText } from "./fragment-format.ts";

const CONTROL = /[\u0000-\u001f\u007f]/;

function cameraFlag(values: Record<string, unknown>): string {
  const camera = required(values, "camera");
  if (!isCameraId(camera)) throw new UsageError(`expected --camera to be a camera id like metro-01-cam-001 (letters, digits, '.', '_', '-'; at most 64), got \`${camera}\``);
  return camera;
}

/** Two times of a span; the end may equal the start (a still), never precede it. */
function span(values: Record<string, unknown>, from: string, to: string): { fromMs: number; toMs: number } {
  const fromMs = parseTime(from, required(values, from));
  const toMs = parseTime(to, required(values, to));
  if (toMs < fromMs) throw new UsageError(`expected --${to} at or after --${from} (${new Date(fromMs).toISOString()}), got \`${values[to] as string}\``);
  return { fromMs, toMs };
}

/** Free text for the record: present, not blank, printable, bounded. */
function textFlag(values: Record<string, unknown>, flag: string, max: number, what: string): string {
  const text = required(values, flag);
  if (text.trim() === "" || text.length > max || CONTROL.test(text)) {
    throw new UsageError(`expected --${flag} to say ${what} in 1 to ${max} printable characters, got ${JSON.stringify(text.slice(0, 80))}`);
  }
  return text;
}

export const fragmentsAddCommand: Command = {
  name: "fragments add",
  synopsis: "fragments add --data DIR --camera ID --file F --start T --end T [--incident] [--json]",
  summary:
    "Registers the recording F of camera ID from --start to --end in this site's archive (R-6.9): the\n" +
    "node takes it in (a hard link where it can, else a copy), records its size and SHA-256, and\n" +
    "prints its fragment id. F must be a finished regular file: a recorder that rewrites it afterwards\n" +
    "damages the archived fragment (export and upload then refuse it). An incident recording\n" +
    "(--incident) goes up the tree at once and is kept 7 years (R-6.7, R-13). The same recording added\n" +
    "again changes nothing and says \"already present\".",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, {
      data: { type: "string" }, camera: { type: "string" }, file: { type: "string" }, start: { type: "string" },
      end: { type: "string" }, incident: { type: "boolean" }, json: { type: "boolean" },
    }, 0);
    if (values.help) return printHelp(this, out);
    const camera = cameraFlag(values);
    const { fromMs, toMs } = span(values, "start", "end");
    if (toMs > Date.now() + MAX_CLOCK_AHEAD_MS) {
      throw new UsageError(`expected --end in the past (a recording that has ended), got \`${values.end}\``);
    }
    // The node may run with another working directory: it gets the path as the operator meant it.
    const request = { camera_id: camera, file_path: resolve(required(values, "file")), start_ms: fromMs, end_ms: toMs, incident: values.incident === true };
    const added = await withAdmin(required(values, "data"), (admin) => admin.addFragment(request));
    out.stdout(values.json ? `${JSON.stringify(addedJson(added), null, 2)}\n` : addedText(added));
    return 0;
  },
};

export const fragmentsListCommand: Command = {
  name: "fragments list",
  synopsis: "fragments list --data DIR [--site ID] [--json]",
  summary:
    "Lists the fragments held here, this site's own and copies received from its subtree (with --site,\n" +
    "those recorded by that site or its subtree), oldest first: id, site, camera, start, end, size in\n" +
    "bytes and whether it is an incident recording.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = values.site === undefined ? "" : checkFlag(() => assertSiteId(values.site!));
    const { fragments } = await withAdmin(required(values, "data"), (admin) => admin.listFragments({ site }));
    out.stdout(values.json ? `${JSON.stringify(fragments.map(fragmentJson), null, 2)}\n` : fragmentsText(fragments));
    return 0;
  },
};

export const fragmentsExportCommand: Command = {
  name: "fragments export",
  synopsis: "fragments export --data DIR --id ID --out FILE",
  summary:
    "Writes fragment ID, held here, to FILE (which must not exist), after checking the archive's copy\n" +
    "against its SHA-256, and prints the bytes written and the SHA-256.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, id: { type: "string" }, out: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    const id = required(values, "id");
    if (!isFragmentId(id)) throw new UsageError(`expected --id to be a fragment id (f-… as \`vmtree fragments list\` shows), got \`${id}\``);
    const file = resolve(required(values, "out"));
    const { fragment } = await withAdmin(required(values, "data"), (admin) => admin.exportFragment({ id, out_path: file }));
    out.stdout(`exported fragment ${id} to ${file}\nwritten ${formatBytes(fragment!.size)}\nsha256  ${fragment!.sha256}\n`);
    return 0;
  },
};

export const fragmentsRequestCommand: Command = {
  name: "fragments request",
  synopsis: "fragments request --data DIR --site ID --camera ID --from T --to T --reason TEXT --requested-by WHO [--json]",
  summary:
    "Records a reasoned request (R-28) for the recordings of camera ID at site ID (below this node)\n" +
    "between --from and --to, and routes it down the tree to that site, which sends what it holds up\n" +
    "hop by hop. Prints the request id; `vmtree fragments requests` shows its outcome. Every flag is\n" +
    "required; the reason and who asks are kept with the request and audited (R-30).",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, {
      data: { type: "string" }, site: { type: "string" }, camera: { type: "string" }, from: { type: "string" }, to: { type: "string" },
      reason: { type: "string" }, "requested-by": { type: "string" }, json: { type: "boolean" },
    }, 0);
    if (values.help) return printHelp(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const camera = cameraFlag(values);
    const { fromMs, toMs } = span(values, "from", "to");
    const request = {
      site, camera_id: camera, from_ms: fromMs, to_ms: toMs,
      reason: textFlag(values, "reason", MAX_REASON_CHARS, "why the recordings are needed"),
      requested_by: textFlag(values, "requested-by", MAX_REQUESTED_BY_CHARS, "who asks for them"),
    };
    const made = await withAdmin(required(values, "data"), (admin) => admin.requestFragments(request));
    out.stdout(values.json ? `${JSON.stringify(requestJson(made.request!), null, 2)}\n` : requestedText(made.request!));
    return 0;
  },
};

export const fragmentsRequestsCommand: Command = {
  name: "fragments requests",
  synopsis: "fragments requests --data DIR [--json]",
  summary:
    "Lists the fragment requests this node made or passed on, oldest first, each with its state\n" +
    "(pending, found, not_found or delivered), how many of the fragments found are held here, and\n" +
    "the owning site's answer.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, json: { type: "boolean" } }, 0);
    if (values.help) return printHelp(this, out);
    const { requests } = await withAdmin(required(values, "data"), (admin) => admin.listFragmentRequests({}));
    out.stdout(values.json ? `${JSON.stringify(requests.map(requestStateJson), null, 2)}\n` : requestsText(requests));
    return 0;
  },
};
