import type { Result } from "../errors.ts";
import { CAMERA_FIELDS, type CameraField } from "./camera.ts";
import type { InputProblem } from "./input-problem.ts";
import { parseCsv, type CsvRecord } from "./parse-csv.ts";
import { compareFieldNames, type RawCamera, type RawInventory } from "./validate-camera.ts";

/**
 * Reads CSV text (BOM already removed) into raw cameras. The delimiter is whichever of `;`
 * and `,` the header line has more of; columns may come in any order but must be exactly
 * the camera fields, and every row must have as many fields as the header has columns.
 * An empty camera list and the values themselves are left to the caller, and so are blank
 * files: `text` must have a non-blank line.
 */
export function readCsvCameras(text: string): Result<RawInventory, InputProblem> {
  const delimiter = detectDelimiter(text);
  const parsed = parseCsv(text, delimiter);
  if (!parsed.ok) return parsed;
  const [header, ...rows] = parsed.value;
  if (header === undefined) throw new Error("readCsvCameras needs text with at least one non-blank line");
  const columns = readHeader(header);
  if (!columns.ok) return columns;
  const cameras: RawCamera[] = [];
  for (const row of rows) {
    if (row.fields.length !== header.fields.length) {
      return { ok: false, error: fieldCountProblem(row, header, delimiter) };
    }
    cameras.push(rawCamera(row, columns.value));
  }
  return { ok: true, value: { numberFormat: delimiter === ";" ? "point-or-comma" : "point", cameras } };
}

// Names never contain either delimiter, so counting them on the first line is enough.
function detectDelimiter(text: string): "," | ";" {
  const end = text.indexOf("\n");
  const firstLine = end === -1 ? text : text.slice(0, end);
  const count = (char: string) => firstLine.split(char).length;
  return count(";") > count(",") ? ";" : ",";
}

type Columns = readonly (readonly [CameraField, number])[];

function readHeader(header: CsvRecord): Result<Columns, InputProblem> {
  const duplicate = header.fields.find((name, index) => header.fields.indexOf(name) !== index);
  if (duplicate !== undefined) {
    return { ok: false, error: { line: header.line, message: `duplicate column ${JSON.stringify(duplicate)}` } };
  }
  const mismatch = compareFieldNames(header.fields, "column");
  if (mismatch !== undefined) return { ok: false, error: { line: header.line, message: mismatch } };
  return { ok: true, value: CAMERA_FIELDS.map((field) => [field, header.fields.indexOf(field)] as const) };
}

function fieldCountProblem(row: CsvRecord, header: CsvRecord, delimiter: string): InputProblem {
  const tooMany = row.fields.length > header.fields.length;
  const hint = tooMany ? `; put values that contain "${delimiter}" in double quotes` : "";
  return {
    line: row.line,
    message: `expected ${header.fields.length} fields as in the header, got ${row.fields.length}${hint}`,
  };
}

function rawCamera(row: CsvRecord, columns: Columns): RawCamera {
  const values = Object.fromEntries(columns.map(([field, index]) => [field, row.fields[index]]));
  return { values: values as Record<CameraField, string>, lineOf: () => row.line };
}
