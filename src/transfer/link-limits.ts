import { EventEmitter } from "node:events";
import type { LinkLimit } from "../gen/vmtree/v1/fragment.ts";
import type { NodeStore } from "../store/node-store.ts";

/** The caps a parent set for its children's links, sent down on each child's command stream. */
export class LinkLimits extends EventEmitter<{ change: [string, LinkLimit] }> {
  readonly #section;

  constructor(store: NodeStore) {
    super();
    this.#section = store.section<LinkLimit>("link-limits");
  }

  /** The cap set for `child`; bits_per_second 0 when none was. */
  async get(child: string): Promise<LinkLimit> {
    return (await this.#section.get(child)) ?? { bits_per_second: 0, set_ms: 0 };
  }

  async set(child: string, bitsPerSecond: number): Promise<LinkLimit> {
    const limit: LinkLimit = { bits_per_second: bitsPerSecond, set_ms: Date.now() };
    await this.#section.put(child, limit);
    this.emit("change", child, limit);
    return limit;
  }
}
