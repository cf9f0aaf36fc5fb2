import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VmtreeError } from "../src/errors.ts";
import { connectAdmin } from "../src/node/admin-client.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, type TestNode } from "./support/tree.ts";

const METRO = new URL("../examples/inventory/kz.ala.metro-01.csv", import.meta.url).pathname;

// every admin command is recorded, and no caller can write what only vmtree records.
describe("audit - what the admin commands record (node stopped, store opened directly)", () => {
  let kz: TestNode;

  beforeAll(async () => {
    kz = await initRoot("kz");
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it.each([
    [["--actor", "node"], 'actor "node" is not one a caller may name; name a user like user:NAME'],
    [["--actor", "site:kz.ala"], 'actor "site:kz.ala" is not one a caller may name; name a user like user:NAME'],
    [["--actor", "peer:127.0.0.1:5000"], 'actor "peer:127.0.0.1:5000" is not one a caller may name; name a user like user:NAME'],
    [["--actor", "user:ev\u001b[2Jil"], 'actor "user:ev\\u001b[2Jil" is not one a caller may name; name a user like user:NAME'],
    [["--target", "t\u001b[31mRED\r"], 'the target holds control characters: "t\\u001b[31mRED\\r"'],
    [["--details", `{"a":${"[".repeat(40)}${"]".repeat(40)}}`], "details must be a JSON object of at most 16 KiB, nested at most 32 deep"],
    [["--action", "audit.quarantine"], "action audit.quarantine is one vmtree records itself; use a group of your own, like vms.quarantine"],
    [["--action", "link.connect"], "action link.connect is one vmtree records itself; use a group of your own, like vms.connect"],
  ])("audit record - refuses %j, which only vmtree records", async (flags, message) => {
    const args = { "--actor": "user:operator", "--action": "vms.view_live", "--target": "kz", [flags[0]!]: flags[1]! };
    const before = (await kz.status()).audit.own;
    const result = await kz.cli(["audit", "record", ...Object.entries(args).flat()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`vmtree: [invalid_argument] ${message}\n`);
    // Only the status read itself was recorded in between.
    expect((await kz.status()).audit.own).toBe(before + 1);
  });

  it.each([
    [["--since", "2026-02-30"], "expected --since like 2026-12-03 or 2026-12-03T10:00:00Z (a date-time needs Z or an offset), got `2026-02-30`"],
    [["--until", "1970-01-01T00:00:00Z"], "expected --until like 2026-12-03 or 2026-12-03T10:00:00Z (a date-time needs Z or an offset), got `1970-01-01T00:00:00Z`"],
    [["--actor", ""], "expected --actor to name what to match, got an empty value"],
    [["--action", ""], "expected --action to name what to match, got an empty value"],
  ])("audit list - %j is a usage error, not a filter that matches everything", async (flags, message) => {
    const result = await kz.cli(["audit", "list", ...flags]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`vmtree: ${message}\nRun \`vmtree --help\` for usage.\n`);
  });

  it("audit resolve - an attempt on an origin that is not quarantined is recorded as failed", async () => {
    const result = await kz.cli(["audit", "resolve", "--site", "kz.ala"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("vmtree: [not_found] the audit stream of kz.ala is not quarantined here\n");
    const [entry] = await kz.auditList(["--action", "audit.resolve"]);
    expect(entry).toMatchObject({ action: "audit.resolve", target: "kz.ala", result: "failed", details: { error: "not quarantined here" } });
  });

  it("audit prune - an administrator's prune that deletes nothing is recorded", async () => {
    const result = await kz.cli(["audit", "prune", "--retention", "1d"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("deleted 0 audit entries past retention (a root keeps every entry at least 7 years)\n");
    const entries = await kz.auditList(["--action", "audit.prune"]);
    expect(entries.map((e) => [e.result, e.details])).toEqual([["ok", { deleted: 0, retention_ms: 86_400_000 }]]);
  });

  it("cameras import - a failed import's record carries no stream password, wherever the file put it", async () => {
    const text = (await readFile(METRO, "utf8")).replace(/,H\.264,/, ",rtsp://admin:TopS3cret@127.0.0.1/s,");
    const file = join(kz.dir, "..", "leaky.csv");
    await writeFile(file, text);
    const result = await kz.cli(["cameras", "import", file]);
    expect(result.code).toBe(1);
    const [entry] = await kz.auditList(["--action", "inventory.import"]);
    expect(entry!.result).toBe("failed");
    expect(String(entry!.details.error)).toContain('field codec: expected one of');
    expect(String(entry!.details.error)).toContain('got "rtsp://127.0.0.1/s"');
    expect(JSON.stringify(entry)).not.toContain("TopS3cret");
  });
});

describe("admin socket - the identity a caller names", () => {
  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it.each(["node", "site:kz.ala", "peer:127.0.0.1:1"])("admin socket - refuses a caller naming itself %j", async (actor) => {
    const kz = await initRoot("kz");
    await kz.serve();
    const admin = await connectAdmin(kz.dir, actor);
    try {
      const error = await admin.getStatus({}).then(() => undefined, (reason: unknown) => reason);
      expect(error).toBeInstanceOf(VmtreeError);
      expect((error as VmtreeError).code).toBe("invalid_argument");
      expect(await kz.auditList(["--action", "node.status"])).toEqual([]);
    } finally {
      await admin.close();
    }
  });
});
