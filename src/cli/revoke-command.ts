import { assertSiteId } from "../pki/site-id.ts";
import { parseVerbArgs, required } from "./args.ts";
import { checkFlag, printHelp, withAdmin, type Command } from "./command.ts";

export const revokeCommand: Command = {
  name: "revoke",
  synopsis: "revoke --data DIR --site ID [--reason TEXT]",
  summary:
    "Revokes site ID of this node's subtree, and with it ID's own subtree. The revocation flows down\n" +
    "to the nodes below; ID's parent refuses its certificate from then on and closes the links open\n" +
    "with it within seconds. ID can join again only with a new invitation.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, reason: { type: "string" } }, 0);
    if (values.help) return printHelp(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const { revocation } = await withAdmin(required(values, "data"), (admin) => admin.revoke({ site, reason: values.reason ?? "" }));
    out.stdout(`revoked ${site} and its subtree at ${new Date(revocation!.revoked_ms).toISOString()}; it can join again only with a new invitation\n`);
    return 0;
  },
};
