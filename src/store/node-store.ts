import { Level } from "level";
import { VmtreeError } from "../errors.ts";


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
   * Opens (creating if needed) the database in `location`.
   * Rejects with `failed_precondition` when another process holds it open.
   */
  static async open(location: string): Promise<NodeStore> {
    const db = new Level<string, unknown>(location, { valueEncoding: "json" });
    try {
      await db.open();
    } catch (cause) {
      const locked = String((cause as { cause?: unknown }).cause ?? cause).includes("lock");
      throw new VmtreeError(
        locked ? "failed_precondition" : "internal",
        locked
          ? `the store at ${location} is in use by another process (is \`vmtree serve\` running on this data directory?)`
          : `cannot open the store at ${location}`,
        { cause },
      );
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

  /** Closes the database; idempotent, a second call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.db.close();
    return this.#closing;
  }
}
