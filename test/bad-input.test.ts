import { copyFile, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { initRoot, type TestNode } from "./support/tree.ts";

const EXAMPLES = new URL("../examples/inventory/", import.meta.url).pathname;
const METRO = join(EXAMPLES, "kz.ala.metro-01.csv");

/**
 * Each bad file is imported at a site that already holds the 40 metro cameras; the
 * import must fail with exit 1 and an error naming file, line, field and value, and
 * leave the inventory exactly as it was. Run against a running node (admin socket)
 * and a stopped one (store opened directly).
 */
describe.each(["running", "stopped"])("cameras import - bad input (node %s)", (mode) => {
  let site: TestNode;
  let dir: string;
  let before: string;

  beforeAll(async () => {
    dir = await makeTempDir("vmtree-bad-");
    site = await initRoot("kz", dir);
    await site.import(METRO);
    if (mode === "running") await site.serve();
    before = JSON.stringify(await site.cameras());
  });

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  async function importFails(name: string, content: string | Buffer): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, content);
    const result = await site.cli(["cameras", "import", file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(JSON.stringify(await site.cameras())).toBe(before);
    return result.stderr.trim();
  }

  const metroText = () => readFile(METRO, "utf8");

  it("refuses a missing column", async () => {
    const text = (await metroText()).replace(",fps,", ",").replace(/,25,(\d+),/g, ",$1,");
    expect(await importFails("no-fps.csv", text)).toBe("vmtree: [invalid_input] no-fps.csv line 1: missing column(s) fps; expected the columns camera_id, name, object_class, camera_type, vendor, model, firmware, protocol, stream_url, codec, width, height, fps, bitrate_kbps, ir_range_m, mount_height_m, latitude, longitude, address, installed_at, status");
  });

  it("refuses a bad number", async () => {
    const text = (await metroText()).replace("1920,1080,12,6144", "1920,1080,1x2,6144");
    expect(await importFails("bad-fps.csv", text)).toBe('vmtree: [invalid_input] bad-fps.csv line 4, field fps: expected a number, got "1x2"');
  });

  it("refuses an unknown camera_type", async () => {
    const text = (await metroText()).replace("crowded,indoor_entry,", "crowded,rooftop,");
    expect(await importFails("type.csv", text)).toContain('type.csv line 4, field camera_type: expected one of outdoor_overview');
    expect(await importFails("type.csv", text)).toContain('got "rooftop"');
  });

  it("refuses an unknown codec", async () => {
    const text = (await metroText()).replace("metro-01-cam-001,Кіреберіс 1,crowded,outdoor_overview,Bosch,DINION IP 5000i,7.10.0095,onvif,rtsp://10.155.226.249:554/stream1,H.264", "metro-01-cam-001,Кіреберіс 1,crowded,outdoor_overview,Bosch,DINION IP 5000i,7.10.0095,onvif,rtsp://10.155.226.249:554/stream1,VP9");
    const error = await importFails("codec.csv", text);
    expect(error).toContain("codec.csv line 2, field codec: expected one of MJPEG, MPEG-4, MPEG-4 ASP, MxPEG, H.264, H.265");
    expect(error).toContain('got "VP9"');
  });

  it("refuses a duplicate camera_id", async () => {
    const text = (await metroText()).replace("metro-01-cam-005,", "metro-01-cam-004,");
    expect(await importFails("dup.csv", text)).toBe('vmtree: [invalid_input] dup.csv line 6, field camera_id: expected a unique camera_id, got "metro-01-cam-004" which line 5 already uses');
  });

  it("refuses a file that is not UTF-8", async () => {
    const bytes = Buffer.from(await metroText(), "utf8");
    const latin1 = Buffer.concat([bytes.subarray(0, 300), Buffer.from([0xd2, 0x20]), bytes.subarray(300)]);
    expect(await importFails("latin1.csv", latin1)).toMatch(/^vmtree: \[invalid_input\] latin1\.csv line \d+: not UTF-8: invalid byte sequence at offset 300 \(0xD2\); save the file as UTF-8$/);
  });

  it("refuses an empty file", async () => {
    expect(await importFails("empty.csv", "")).toBe('vmtree: [invalid_input] empty.csv: empty file; expected a CSV header or a JSON object with "cameras"');
  });

  it("refuses a JSON inventory with a bad value and names its line", async () => {
    const json = (await readFile(join(EXAMPLES, "kz.ast.akimat.json"), "utf8"))
      .replace('"site": "kz.ast.akimat"', '"site": "kz"')
      .replace('"bitrate_kbps": 6144', '"bitrate_kbps": -5');
    const error = await importFails("akimat.json", json);
    expect(error).toMatch(/^vmtree: \[invalid_input\] akimat\.json line \d+, field bitrate_kbps: expected a positive integer, got -5$/);
  });

  it("refuses another site's JSON export", async () => {
    const json = await readFile(join(EXAMPLES, "kz.ast.akimat.json"), "utf8");
    expect(await importFails("kz.ast.akimat.json", json)).toBe(
      `vmtree: [invalid_input] kz.ast.akimat.json line 2, field site: expected kz (the site importing it), got "kz.ast.akimat": this is another site's inventory`,
    );
  });

  it("refuses a file over 64 MiB and names it, before sending it", async () => {
    const file = join(dir, "big70.csv");
    await writeFile(file, "");
    await truncate(file, 70 * 1024 * 1024); // sparse: costs no disk and no time
    const result = await site.cli(["cameras", "import", file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe("vmtree: [invalid_input] big70.csv: the file is larger than 67108864 bytes\n");
    expect(JSON.stringify(await site.cameras())).toBe(before);
  });

  it("accepts the three sample formats afterwards", async () => {
    const copy = join(dir, "kz.shy.road-a2.csv");
    await copyFile(join(EXAMPLES, "kz.shy.road-a2.csv"), copy);
    const result = await site.cli(["cameras", "import", copy]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`imported ${copy}: 18 added, 0 changed, 40 removed, 0 unchanged\n`);
    await site.import(METRO);
  });
});
