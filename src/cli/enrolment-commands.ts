import { checkDialAddress, checkListenAddress } from "../node/address.ts";
import { initRoot, joinParent } from "../node/enrolment.ts";
import { assertSiteId } from "../pki/site-id.ts";
import { parseDuration, parseVerbArgs, required, UsageError } from "./args.ts";
import { checkFlag, printHelp as help, withAdmin, type Command } from "./command.ts";

const MAX_TTL_MS = 30 * 86_400_000;

export const initCommand: Command = {
  name: "init",
  synopsis: "init --data DIR --site ID --listen HOST:PORT [--advertise HOST:PORT]",
  summary:
    "Creates a root (national) node and the tree's root CA in DIR. Port 0 picks a free port on the\n" +
    "first `serve` and keeps it. --advertise is the address put into join tokens when children must\n" +
    "dial another address than --listen.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, listen: { type: "string" }, advertise: { type: "string" } }, 0);
    if (values.help) return help(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const listen = required(values, "listen");
    checkFlag(() => checkListenAddress(listen));
    if (values.advertise !== undefined) checkFlag(() => checkDialAddress(values.advertise!, "advertise"));
    const result = await initRoot({ dataDir: required(values, "data"), site, listen, advertise: values.advertise });
    out.stdout(`initialised root node ${result.site}; root CA fingerprint sha256:${result.caFingerprint}\n`);
    return 0;
  },
};

export const inviteCommand: Command = {
  name: "invite",
  synopsis: "invite --data DIR --site CHILD_ID [--ttl 24h]",
  summary:
    "Prints a single-use join token for a direct child of this node, and nothing else on stdout.\n" +
    "The token expires after --ttl (s, m, h or d; at most 30d) and pins the tree's root CA.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, site: { type: "string" }, ttl: { type: "string" } }, 0);
    if (values.help) return help(this, out);
    const site = checkFlag(() => assertSiteId(required(values, "site")));
    const ttlMs = values.ttl === undefined ? 86_400_000 : parseDuration("ttl", values.ttl);
    if (ttlMs > MAX_TTL_MS) throw new UsageError(`expected --ttl of at most 30d, got \`${values.ttl}\``);
    const result = await withAdmin(required(values, "data"), (admin) => admin.createInvite({ site, ttl_seconds: Math.ceil(ttlMs / 1000) }));
    if (result.enrolled_epoch > 0) {
      out.stderr(`vmtree: note: ${site} is already enrolled (epoch ${result.enrolled_epoch}); joining with this token re-enrols it as a new epoch\n`);
    }
    out.stdout(`${result.token}\n`);
    return 0;
  },
};

export const joinCommand: Command = {
  name: "join",
  synopsis: "join --data DIR --token TOKEN [--listen HOST:PORT] [--advertise HOST:PORT]",
  summary:
    "Enrols DIR as a child of the node that issued TOKEN: checks the parent's CA against the\n" +
    "fingerprint pinned in the token, then obtains the node's certificates. --listen (default\n" +
    "127.0.0.1:0) is where this node will serve children of its own.",
  async run(argv, out) {
    const { values } = parseVerbArgs(argv, { data: { type: "string" }, token: { type: "string" }, listen: { type: "string" }, advertise: { type: "string" } }, 0);
    if (values.help) return help(this, out);
    const listen = values.listen ?? "127.0.0.1:0";
    checkFlag(() => checkListenAddress(listen));
    if (values.advertise !== undefined) checkFlag(() => checkDialAddress(values.advertise!, "advertise"));
    const dataDir = required(values, "data");
    const result = await joinParent({ dataDir, token: required(values, "token"), listen, advertise: values.advertise });
    out.stdout(`joined ${result.parent} as ${result.site} (epoch ${result.epoch}); start it with \`vmtree serve --data ${dataDir}\`\n`);
    return 0;
  },
};
