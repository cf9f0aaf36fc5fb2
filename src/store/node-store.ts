import { existsSync } from "node:fs";
import { join } from "node:path";
import { Level } from "level";
import { VmtreeError } from "../errors.ts";

/** One operation of an atomic batch across sections: `sublevel` names the section. */
export type BatchOp = { type: "put"; sublevel: never; key: string; value: unknown } | { type: "del"; sublevel: never; key: string };

/** A put of `value` under `key` in `section`, for {@link NodeStore.db}'s `batch`. */
export function putOp(section: object, key: string, value: unknown): BatchOp {
  return { type: "put", sublevel: section as never, key, value };
}

/** A delete of `key` in `section`, for {@link NodeStore.db}'s `batch`. */
export function delOp(section: object, key: string): BatchOp {
  return { type: "del", sublevel: section as never, key };
}

/** Options of {@link NodeStore.open}. */
export interface OpenStoreOptions {
  /**
   * Create an empty database when `location` holds none (default true). A node's own
   * store is opened with `false`: only `init` and `join` may create it, so that a
   * deleted store is noticed instead of coming back empty under the same epoch.
   */
  createIfMissing?: boolean;
  /** Refuse when `location` already holds a database (default false). */
  errorIfExists?: boolean;
}

/**
 * The node's LevelDB database on disk. Every kind of data lives in its own sublevel
 * (a "section"); writes that must be atomic together go through `batch` on the root
 * database with `sublevel` set on each operation.
 */
export class NodeStore {
  readonly db: Level<string, unknown>;
  #closing: Promise<void> | undefined;

  private constructor(db: Level<string, unknown>) {
    this.db = db;
  }

  /**
   * Opens the database in `location`, creating it if needed unless `createIfMissing` is false.
   * Rejects with `failed_precondition` when another process holds it open, with `not_found`
   * when there is no database and `createIfMissing` is false, and with `already_exists`
   * when there is one and `errorIfExists` is true.
   */
  static async open(location: string, options: OpenStoreOptions = {}): Promise<NodeStore> {
    const createIfMissing = options.createIfMissing ?? true;
    const errorIfExists = options.errorIfExists ?? false;
    // Checked before LevelDB opens: it would create the directory and its LOCK file on the way.
    if (!createIfMissing && !existsSync(join(location, "CURRENT"))) {
      throw new VmtreeError("not_found", `there is no store at ${location}`);
    }
    const db = new Level<string, unknown>(location, { valueEncoding: "json", createIfMissing, errorIfExists });
    try {
      await db.open();
    } catch (cause) {
      const reason = String((cause as { cause?: unknown }).cause ?? cause);
      if (reason.includes("lock")) {
        throw new VmtreeError(
          "failed_precondition",
          `the store at ${location} is in use by another process: \`vmtree serve\` or another vmtree command on this data directory; wait for it to finish, or stop the node`,
          { cause },
        );
      }
      if (!createIfMissing && /does not exist|No such file/.test(reason)) {
        throw new VmtreeError("not_found", `there is no store at ${location}`, { cause });
      }
      if (errorIfExists && reason.includes("exists")) {
        throw new VmtreeError("already_exists", `a store already exists at ${location}`, { cause });
      }
      throw new VmtreeError("internal", `cannot open the store at ${location}`, { cause });
    }
    return new NodeStore(db);
  }

  /** A sublevel holding JSON values under string keys. */
  section<V>(name: string) {
    return this.db.sublevel<string, V>(name, { valueEncoding: "json" });
  }

  /**
   * The same sublevel with its values as raw text: for readers that must survive a value
   * that is not valid JSON (a JSON sublevel's iterator throws on it and ends).
   */
  textSection(name: string) {
    return this.db.sublevel<string, string>(name, { valueEncoding: "utf8" });
  }

  /** True when the database holds no key at all. */
  async isEmpty(): Promise<boolean> {
    const keys = await this.db.keys({ limit: 1 }).all();
    return keys.length === 0;
  }

  /** Closes the database; idempotent, a second call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.db.close();
    return this.#closing;
  }
}
