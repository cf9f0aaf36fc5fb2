import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Camera } from "./camera.ts";
import { belowMinimums } from "./minimums.ts";
import { parseInventory } from "./parse-inventory.ts";

function sample(file: string): Camera[] {
  const result = parseInventory(file, readFileSync(new URL(`../../examples/inventory/${file}`, import.meta.url)));
  if (!result.ok) throw result.error;
  return result.value;
}

function camera(file: string, id: string): Camera {
  const found = sample(file).find((candidate) => candidate.camera_id === id);
  if (found === undefined) throw new Error(`${id} is not in ${file}`);
  return found;
}

describe("belowMinimums", () => {
  it("belowMinimums - finds nothing for a compliant camera", () => {
    expect(belowMinimums(camera("kz.ala.metro-01.csv", "metro-01-cam-001"))).toEqual([]);
  });

  it.each([
    ["kz.ala.metro-01.csv", "metro-01-cam-003", ["fps 12 < 25 (R-A2.1)"]],
    ["kz.ala.metro-01.csv", "metro-01-cam-005", ["bitrate 2048 kbit/s < 5000 kbit/s (R-A2.1)"]],
    ["kz.ala.metro-01.csv", "metro-01-cam-010", ["IR range 15 m < 150 m for outdoor_ptz_overview (R-A2.2)"]],
    [
      "kz.ala.metro-01.csv",
      "metro-01-cam-027",
      ["resolution 1280x720 < 1920x1080 (R-A2.1)", "IR range 15 m < 30 m for outdoor_entry (R-A2.2)"],
    ],
    [
      "kz.ast.akimat.json",
      "akimat-cam-004",
      ["resolution 1280x720 < 1920x1080 (R-A2.1)", "IR range 15 m < 20 m for indoor_entry (R-A2.2)"],
    ],
    ["kz.shy.road-a2.csv", "road-a2-cam-005", ["fps 15 < 25 (R-A2.1)", "IR range 30 m < 50 m for outdoor_traffic (R-A2.2)"]],
    ["kz.shy.road-a2.csv", "road-a2-cam-018", ["IR range 15 m < 150 m for outdoor_ptz_road (R-A2.2)"]],
  ])("belowMinimums - explains why %s %s falls short", (file, id, reasons) => {
    expect(belowMinimums(camera(file, id))).toEqual(reasons);
  });

  it.each([
    ["kz.ala.metro-01.csv", 18],
    ["kz.ast.akimat.json", 8],
    ["kz.shy.road-a2.csv", 11],
  ])("belowMinimums - counts the cameras of %s below the minimums", (file, count) => {
    expect(sample(file).filter((candidate) => belowMinimums(candidate).length > 0)).toHaveLength(count);
  });

  const base = camera("kz.ala.metro-01.csv", "metro-01-cam-001");

  it("belowMinimums - accepts a camera exactly at every minimum", () => {
    expect(belowMinimums({ ...base, width: 1920, height: 1080, bitrate_kbps: 5000, fps: 25, ir_range_m: 30 })).toEqual([]);
  });

  it("belowMinimums - accepts a 1080x1920 corridor-format camera", () => {
    expect(belowMinimums({ ...base, width: 1080, height: 1920 })).toEqual([]);
  });

  it("belowMinimums - rejects a wide image that is too low", () => {
    expect(belowMinimums({ ...base, width: 2560, height: 720 })).toEqual(["resolution 2560x720 < 1920x1080 (R-A2.1)"]);
  });

  it.each([
    ["outdoor_overview", 30],
    ["outdoor_entry", 30],
    ["outdoor_vehicle_entry", 30],
    ["outdoor_traffic", 50],
    ["indoor_entry", 20],
    ["indoor_overview", 20],
    ["outdoor_ptz_overview", 150],
    ["indoor_ptz_overview", 30],
    ["outdoor_ptz_road", 150],
  ] as const)("belowMinimums - needs %s to reach an IR range of %s m", (type, minimum) => {
    expect(belowMinimums({ ...base, camera_type: type, ir_range_m: minimum })).toEqual([]);
    expect(belowMinimums({ ...base, camera_type: type, ir_range_m: minimum - 0.5 })).toEqual([
      `IR range ${minimum - 0.5} m < ${minimum} m for ${type} (R-A2.2)`,
    ]);
  });
});
