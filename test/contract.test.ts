import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDirs, runProcess } from "./support/processes.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUF = join(ROOT, "node_modules", ".bin", "buf");

async function filesUnder(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(path.slice(dir.length + 1), await readFile(path, "utf8"));
  }
  return files;
}

describe("wire contract", () => {
  afterAll(removeTempDirs);

  it("proto - passes buf lint", async () => {
    const result = await runProcess(BUF, ["lint"], { cwd: ROOT });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("src/gen - matches what `npm run gen` generates from proto/ (run it after changing a .proto)", async () => {
    const out = await makeTempDir("vmtree-gen-");
    const result = await runProcess(BUF, ["generate", "--output", out], { cwd: ROOT });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const generated = await filesUnder(join(out, "src", "gen"));
    const committed = await filesUnder(join(ROOT, "src", "gen"));
    expect([...committed.keys()].sort()).toEqual([...generated.keys()].sort());
    for (const [path, text] of generated) expect(committed.get(path), path).toBe(text);
  });
});
