import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { VmtreeError } from "../errors.ts";
import { assertSiteId } from "../pki/site-id.ts";

/** What `node.json` holds: a node's identity and where it listens and dials. */
export interface NodeConfig {
  site: string;
  /** Starts at 1; a re-enrolment of the same site id gets the next one from its parent. */
  epoch: number;
  /**
   * The random id of this node's store, also held in the store's identity marker
   * (`store/store-identity.ts`); absent in data directories made before markers.
   */
  storeId?: string;
  /** HOST:PORT to listen on for children. Port 0 picks a free port on first start and keeps it. */
  listen: string;
  parent?: { site: string; address: string };
  /** HOST:PORT put into join tokens when children must dial another address than `listen`. */
  advertise?: string;
  /** Days a non-root node keeps audit entries its parent has stored (default 90). */
  auditRetentionDays?: number;
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
    const config = JSON.parse(text) as NodeConfig;
    assertSiteId(config.site);
    return config;
  }

  async writeConfig(config: NodeConfig): Promise<void> {
    await writeAtomically(this.configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }

  /** True when the directory already holds a node. */
  async exists(): Promise<boolean> {
    return readFile(this.configFile).then(() => true, () => false);
  }
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
