import { join } from "node:path";
import { AuditLog } from "../../src/audit/audit-log.ts";
import { NodeStore } from "../../src/store/node-store.ts";

const CHUNK = 10_000;

/**
 * Appends `count` actions of the site's video system to a stopped node's own log, as
 * its recorder would have while the link was down, in batches so that a large backlog
 * takes seconds rather than one synced write per entry.
 */
export async function appendBacklog(dataDir: string, site: string, epoch: number, count: number, target = "backlog"): Promise<void> {
  const store = await NodeStore.open(join(dataDir, "db"));
  try {
    const log = new AuditLog(store, site, epoch);
    for (let done = 0; done < count; done += CHUNK) {
      const n = Math.min(CHUNK, count - done);
      await log.appendMany(Array.from({ length: n }, (_, i) => ({
        actor: "user:operator", action: "vms.view_live", target: `${target}-${done + i}`, result: "ok",
      })));
    }
  } finally {
    await store.close();
  }
}
