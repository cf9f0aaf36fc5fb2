import type { Result, VmtreeError } from "../errors.ts";
import type { Camera } from "./camera.ts";
import { decodeUtf8 } from "./decode-utf8.ts";
import { inputError, type InputProblem } from "./input-problem.ts";
import { readCsvCameras } from "./read-csv-cameras.ts";
import { readJsonCameras } from "./read-json-cameras.ts";
import { validateCamera, type RawInventory } from "./validate-camera.ts";

/**
 * Parses a site's camera inventory file: JSON (`{site, exported_at, cameras}` or a bare array)
 * when the first character after an optional BOM and blanks is `{` or `[`, otherwise CSV
 * separated by `,` or `;` (decimal commas are accepted only with `;`), with CRLF or LF.
 * The bytes must be UTF-8.
 *
 * Returns every camera of the file, or an `invalid_input` error for the first problem:
 * `FILE line N, field F: expected X, got "V"` (line and field as far as they apply). Never
 * returns part of a file. Stream URLs keep their credentials; strip them before they leave
 * the site. With `options.site`, a JSON export that names another site in its `site`
 * field is refused: importing it would replace this site's inventory with another's.
 */
export function parseInventory(file: string, bytes: Uint8Array, options: { site?: string } = {}): Result<Camera[], VmtreeError> {
  const text = decodeUtf8(bytes);
  if (!text.ok) {
    const { line, offset, byte } = text.error;
    const hex = byte.toString(16).toUpperCase().padStart(2, "0");
    return invalid(file, {
      line,
      message: `not UTF-8: invalid byte sequence at offset ${offset} (0x${hex}); save the file as UTF-8`,
    });
  }
  const first = /\S/.exec(text.value)?.[0];
  if (first === undefined) {
    return invalid(file, { message: 'empty file; expected a CSV header or a JSON object with "cameras"' });
  }
  const raw = first === "{" || first === "[" ? readJsonCameras(text.value) : readCsvCameras(text.value);
  if (!raw.ok) return invalid(file, raw.error);
  const declared = raw.value.site;
  if (options.site !== undefined && declared !== undefined && declared.value !== options.site) {
    return invalid(file, {
      line: declared.line,
      field: "site",
      message: `expected ${options.site} (the site importing it), got ${JSON.stringify(declared.value)}: this is another site's inventory`,
    });
  }
  const cameras = validateAll(raw.value);
  return cameras.ok ? cameras : invalid(file, cameras.error);
}

function validateAll(raw: RawInventory): Result<Camera[], InputProblem> {
  if (raw.cameras.length === 0) return { ok: false, error: { message: "no cameras; expected at least one camera" } };
  const cameras: Camera[] = [];
  const firstLines = new Map<string, number>();
  for (const rawCamera of raw.cameras) {
    const camera = validateCamera(rawCamera, raw.numberFormat);
    if (!camera.ok) return camera;
    const id = camera.value.camera_id;
    const line = rawCamera.lineOf("camera_id");
    const firstLine = firstLines.get(id);
    if (firstLine !== undefined) {
      const message = `expected a unique camera_id, got ${JSON.stringify(id)} which line ${firstLine} already uses`;
      return { ok: false, error: { line, field: "camera_id", message } };
    }
    firstLines.set(id, line);
    cameras.push(camera.value);
  }
  return { ok: true, value: cameras };
}

function invalid(file: string, problem: InputProblem): { ok: false; error: VmtreeError } {
  return { ok: false, error: inputError(file, problem) };
}
