import type { Result } from "../errors.ts";
import { CAMERA_FIELDS, type CameraField } from "./camera.ts";
import { describeValue, type InputProblem } from "./input-problem.ts";
import { parseJson, type ParsedJson } from "./parse-json.ts";
import { compareFieldNames, type RawCamera, type RawInventory } from "./validate-camera.ts";

// Export metadata beside the list; anything else would be data this reader drops.
const WRAPPER_KEYS: readonly string[] = ["site", "exported_at", "cameras"];

/**
 * Reads JSON text (BOM already removed) into raw cameras: either `{site, exported_at,
 * cameras: [...]}` or a bare array of camera objects. Each camera object must have exactly
 * the camera fields; a wrong field is reported on the line of its key. Values are checked
 * by the caller, which also rejects an empty list.
 */
export function readJsonCameras(text: string): Result<RawInventory, InputProblem> {
  const parsed = parseJson(text);
  if (!parsed.ok) {
    return { ok: false, error: { line: parsed.error.line, message: `invalid JSON: ${parsed.error.message}` } };
  }
  const list = cameraList(parsed.value);
  if (!list.ok) return list;
  const site = declaredSite(parsed.value);
  const cameras: RawCamera[] = [];
  const listLines = parsed.value.linesOf(list.value);
  for (const [index, item] of list.value.entries()) {
    const camera = rawCamera(item, listLines.members.get(String(index)) ?? listLines.line, parsed.value);
    if (!camera.ok) return camera;
    cameras.push(camera.value);
  }
  return { ok: true, value: { numberFormat: "json", cameras, ...(site ? { site } : {}) } };
}

function declaredSite(json: ParsedJson): { value: unknown; line: number } | undefined {
  const root = json.value;
  if (!isObject(root) || !("site" in root)) return undefined;
  const lines = json.linesOf(root);
  return { value: root["site"], line: lines.members.get("site") ?? lines.line };
}

function cameraList(json: ParsedJson): Result<unknown[], InputProblem> {
  const root = json.value;
  if (Array.isArray(root)) return { ok: true, value: root };
  if (!isObject(root)) {
    return { ok: false, error: { line: 1, message: `expected a JSON object or array, got ${describeValue(root)}` } };
  }
  const lines = json.linesOf(root);
  const extra = Object.keys(root).find((key) => !WRAPPER_KEYS.includes(key));
  if (extra !== undefined) {
    const message = `unknown top-level field ${JSON.stringify(extra)}; expected only ${WRAPPER_KEYS.join(", ")}`;
    return { ok: false, error: { line: lines.members.get(extra) ?? lines.line, message } };
  }
  const cameras = root["cameras"];
  if (Array.isArray(cameras)) return { ok: true, value: cameras };
  if (cameras === undefined) return { ok: false, error: { line: lines.line, message: 'missing field "cameras"' } };
  const message = `expected "cameras" to be an array of camera objects, got ${describeValue(cameras)}`;
  return { ok: false, error: { line: lines.members.get("cameras") ?? lines.line, message } };
}

function rawCamera(item: unknown, line: number, json: ParsedJson): Result<RawCamera, InputProblem> {
  if (!isObject(item)) {
    return { ok: false, error: { line, message: `expected a camera object, got ${describeValue(item)}` } };
  }
  const lines = json.linesOf(item);
  const names = Object.keys(item);
  const mismatch = compareFieldNames(names, "field");
  if (mismatch !== undefined) {
    // Point at the first unknown key if there is one: that is where the typo is.
    const unknown = names.find((name) => !(CAMERA_FIELDS as readonly string[]).includes(name));
    const line = unknown === undefined ? lines.line : (lines.members.get(unknown) ?? lines.line);
    return { ok: false, error: { line, message: mismatch } };
  }
  return {
    ok: true,
    value: {
      values: item as Record<CameraField, unknown>,
      lineOf: (field) => lines.members.get(field) ?? lines.line,
    },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
