import { assertSiteId } from "../pki/site-id.ts";
import { formatBandwidth, parseBandwidth } from "../transfer/bandwidth.ts";
import { parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";

/**
 * `--bandwidth` in bits per second, 0 for no cap. `0` is accepted here although the
 * config refuses it: on the command line it can only mean lifting the cap.
 */
export function parseLimitFlag(text: string): number {
  if (/^0+$/.test(text.trim())) return 0;
  const bitsPerSecond = checkFlag(() => parseBandwidth(text, "--bandwidth"));
  if (bitsPerSecond === Infinity) return 0;
  if (!Number.isSafeInteger(bitsPerSecond)) throw new UsageError(`--bandwidth: expected a whole number of bits per second, got \`${text}\` (${bitsPerSecond} bit/s)`);
  return bitsPerSecond;
}

export const limitCommand: Command = {
  name: "limit",
  synopsis: "limit --data DIR --site CHILD --bandwidth RATE",
  summary:
    "Caps the bandwidth of video fragments on the link of CHILD, a direct child of this node. RATE is\n" +
    "in bits per second with k, M or G (20Mbit, 500kbit, 1.5Gbit; bytes are refused); `none` or 0\n" +
    "lifts the cap. The child applies it within a second, also to transfers already running, and\n" +
    "keeps it until told otherwise (R-6.19).",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, bandwidth: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const bitsPerSecond = parseLimitFlag(required(values, "bandwidth"));
    const { limit } = await withAdmin(required(values, "data"), (admin) => admin.setLinkLimit({ site, bits_per_second: bitsPerSecond }));
    const set = limit!.bits_per_second;
    out.stdout(set > 0 ? `cap for fragments on the link of ${site}: ${formatBandwidth(set)} (${set} bits per second)\n` : `cap for fragments on the link of ${site} lifted\n`);
    return 0;
  },
};
