import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { VmtreeError } from "../errors.ts";
import { checkSiteId, parentOf } from "../pki/site-id.ts";
import { parseBandwidth, parseSchedule } from "../transfer/bandwidth.ts";
import { MAX_TRANSFER_CONCURRENCY } from "../transfer/transfer-queue.ts";
import { checkListenAddress } from "./address.ts";

/** What `node.json` holds: a node's identity and where it listens and dials. */
export interface NodeConfig {
  site: string;
  /** Starts at 1; a re-enrolment of the same site id gets the next one from its parent. */
  epoch: number;
  /**
   * The random id of this node's store, also held in the store's identity marker
   * (`store/store-identity.ts`).
   */
  storeId: string;
  /** HOST:PORT to listen on for children. Port 0 picks a free port on first start and keeps it. */
  listen: string;
  parent?: { site: string; address: string };
  /** HOST:PORT put into join tokens when children must dial another address than `listen`. */
  advertise?: string;
  /** Days a non-root node keeps audit entries its parent has stored (default 90). */
  auditRetentionDays?: number;
  /** The cap for fragments on the parent link, like "200Mbit" (bits per second); none when absent. */
  bandwidth?: string;
  /** Caps by local time of day, like [{"from": "08:00", "to": "20:00", "bandwidth": "20Mbit"}]; a window's cap replaces `bandwidth`. */
  bandwidthSchedule?: unknown[];
  /** Fragments sent to the parent at once (default 8). */
  transferConcurrency?: number;
  createdAt: string;
}

/**
 * The layout of a node's data directory. The directory is created with mode 0700 and
 * every key with 0600: the admin socket inside it is guarded by those permissions.
 */
export class DataDir {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  get configFile(): string { return join(this.root, "node.json"); }
  get dbDir(): string { return join(this.root, "db"); }
  get tlsDir(): string { return join(this.root, "tls"); }
  get rootCaFile(): string { return join(this.tlsDir, "root-ca.pem"); }
  get nodeCertFile(): string { return join(this.tlsDir, "node.pem"); }
  get nodeKeyFile(): string { return join(this.tlsDir, "node.key"); }
  get caCertFile(): string { return join(this.tlsDir, "ca.pem"); }
  get caKeyFile(): string { return join(this.tlsDir, "ca.key"); }
  get adminSocket(): string { return join(this.root, "admin.sock"); }
  get fragmentsDir(): string { return join(this.root, "fragments"); }

  /** Creates the directory tree with owner-only permissions. */
  async create(): Promise<void> {
    await mkdir(this.tlsDir, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
  }

  /**
   * Reads `node.json`.
   * Rejects with `failed_precondition` when the directory holds no node.
   */
  async readConfig(): Promise<NodeConfig> {
    let text: string;
    try {
      text = await readFile(this.configFile, "utf8");
    } catch (cause) {
      throw new VmtreeError(
        "failed_precondition",
        `${this.root} holds no vmtree node (no node.json); create one with \`vmtree init\` or \`vmtree join\``,
        { cause },
      );
    }
    return parseNodeConfig(text, this.configFile);
  }

  /** What to do about a damaged file of this directory. */
  get remedy(): string {
    return remedyFor(this.root);
  }

  async writeConfig(config: NodeConfig): Promise<void> {
    await writeAtomically(this.configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }

  /** True when the directory already holds a node. */
  async exists(): Promise<boolean> {
    return readFile(this.configFile).then(() => true, () => false);
  }
}

/** What to do about a damaged file of the data directory `root`. */
export function remedyFor(root: string): string {
  return `restore ${root} from its backup, or enrol the node again into an empty data directory`;
}

/**
 * Parses and checks the text of `node.json` (`file` names it in errors). Every field a
 * node relies on is checked before anything runs, so a damaged file is refused with the
 * field and value at fault instead of a node that serves and then fails on every link.
 * Throws `failed_precondition` naming the file, the field, the value and what to do.
 */
export function parseNodeConfig(text: string, file: string): NodeConfig {
  const root = resolve(file, "..");
  const refuse = (problem: string): never => {
    throw new VmtreeError("failed_precondition", `${file} ${problem}; ${remedyFor(root)}`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    refuse(`is not valid JSON (${(cause as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    refuse(`holds ${describe(value)}, expected an object with the fields site, epoch, storeId and listen`);
  }
  const config = value as Record<string, unknown>;
  const field = (name: string, expected: string, got: unknown, why?: string): never =>
    refuse(`field ${name}: expected ${expected}, got ${describe(got)}${why ? ` (${why})` : ""}`);
  // An operator's setting, not what enrolment wrote: fixing that one field is the remedy.
  const setting = (name: string, expected: string, got: unknown, why?: string): never => {
    throw new VmtreeError("failed_precondition", `${file} field ${name}: expected ${expected}, got ${describe(got)}${why ? ` (${why})` : ""}; correct it, or remove it for the default`);
  };
  const siteId = (name: string, got: unknown): string => {
    if (typeof got !== "string") return field(name, "a site id like kz.ala", got);
    const checked = checkSiteId(got);
    return checked.ok ? got : field(name, "a site id like kz.ala", got, checked.error.rawMessage);
  };
  const address = (name: string, got: unknown, options: { port0: boolean }): string => {
    const expected = options.port0 ? "HOST:PORT like 127.0.0.1:7443" : "HOST:PORT with a real port, like 127.0.0.1:7443";
    if (typeof got !== "string") return field(name, expected, got);
    let port: number;
    try {
      port = checkListenAddress(got).port;
    } catch {
      return field(name, expected, got);
    }
    return port === 0 && !options.port0 ? field(name, expected, got) : got;
  };

  const site = siteId("site", config.site);
  const epoch = config.epoch;
  if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 1) field("epoch", "a positive integer", epoch);
  address("listen", config.listen, { port0: true });
  if (config.parent !== undefined) {
    const parent = config.parent;
    if (typeof parent !== "object" || parent === null || Array.isArray(parent)) {
      field("parent", "an object with the fields site and address", parent);
    }
    const { site: parentSite, address: parentAddress } = parent as Record<string, unknown>;
    siteId("parent.site", parentSite);
    if (parentSite !== parentOf(site)) field("parent.site", `${parentOf(site) ?? "no parent (site is a root id)"}, the parent of ${site}`, parentSite);
    address("parent.address", parentAddress, { port0: false });
  }
  if (config.advertise !== undefined) address("advertise", config.advertise, { port0: false });
  if (typeof config.storeId !== "string" || !/^[0-9a-f]{32}$/.test(config.storeId)) {
    field("storeId", "32 hexadecimal digits", config.storeId);
  }
  const retention = config.auditRetentionDays;
  if (retention !== undefined && (typeof retention !== "number" || !Number.isFinite(retention) || retention <= 0)) {
    setting("auditRetentionDays", "a positive number of days", retention);
  }
  if (config.bandwidth !== undefined) {
    try {
      parseBandwidth(config.bandwidth as string, "bandwidth");
    } catch (error) {
      setting("bandwidth", "a rate like 200Mbit", config.bandwidth, VmtreeError.from(error).rawMessage);
    }
  }
  if (config.bandwidthSchedule !== undefined) {
    try {
      parseSchedule(config.bandwidthSchedule, "bandwidthSchedule");
    } catch (error) {
      setting("bandwidthSchedule", "a list of {from, to, bandwidth}", config.bandwidthSchedule, VmtreeError.from(error).rawMessage);
    }
  }
  const concurrency = config.transferConcurrency;
  if (concurrency !== undefined && (typeof concurrency !== "number" || !Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_TRANSFER_CONCURRENCY)) {
    setting("transferConcurrency", `an integer from 1 to ${MAX_TRANSFER_CONCURRENCY}`, concurrency);
  }
  return config as unknown as NodeConfig;
}

/** A value as an error message shows it. */
function describe(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

/**
 * Writes through a temporary file and a rename, so that a reader (the certificate
 * file watcher among them) never sees a half-written file.
 */
export async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode });
  await chmod(temporary, mode);
  await rename(temporary, file);
}
