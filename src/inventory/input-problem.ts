import { VmtreeError } from "../errors.ts";

/**
 * What is wrong with an input file and where, before the file name is known. Lines are
 * 1-based physical lines of the file; `field` is a camera field or column name.
 */
export interface InputProblem {
  readonly line?: number;
  readonly field?: string;
  readonly message: string;
}

/**
 * Builds the `invalid_input` error for a problem in `file`, formatted as
 * `FILE line N, field F: MESSAGE` with the parts that are known.
 */
export function inputError(file: string, problem: InputProblem): VmtreeError {
  const line = problem.line === undefined ? "" : ` line ${problem.line}`;
  const field = problem.field === undefined ? "" : `, field ${problem.field}`;
  return new VmtreeError("invalid_input", `${file}${line}${field}: ${problem.message}`);
}

// Long values would drown the message; the start is enough to find the cell.
const SHOWN_CHARS = 60;

/**
 * A value as it appears in the file, for the `got ...` part of a message: strings quoted
 * and escaped (so blanks and control characters show) and cut at 60 characters.
 */
export function describeValue(value: unknown): string {
  if (typeof value === "string") {
    const chars = [...value];
    return JSON.stringify(chars.length > SHOWN_CHARS ? `${chars.slice(0, SHOWN_CHARS).join("")}…` : value);
  }
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" && value !== null) return "an object";
  return String(value);
}
