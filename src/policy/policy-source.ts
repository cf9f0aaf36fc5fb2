import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from "yaml";
import type { Result } from "../errors.ts";
import { describeValue, type InputProblem } from "../inventory/input-problem.ts";

/** A policy file read into plain values, remembering where each value was written. */
export interface PolicySource {
  /** Maps, lists, strings, numbers, booleans and null, as YAML's core schema (or JSON) reads them. */
  readonly value: unknown;
  /**
   * The 1-based line of the value at `path` (map keys and list indexes from the top), the
   * line of its key when it is a map member; when the path leads nowhere (a missing field),
   * the line of the deepest value it reached.
   */
  lineOf(path: readonly (string | number)[]): number | undefined;
}

// Aliases can multiply a small file into a huge value; 100 is the yaml default, made explicit.
const MAX_ALIAS_COUNT = 100;

/**
 * Reads a policy file: JSON when the name ends in `.json` (any case), YAML otherwise. Both
 * go through the same YAML parser, so both report lines, and duplicate keys are refused in
 * both (JSON.parse would keep the last one silently); so are keys that are not plain values. A JSON file must also be JSON, not just
 * YAML that looks like it: comments, single quotes and trailing commas are refused there.
 * YAML warnings (unknown tags, for instance) are refused like errors: a policy has no use for them.
 */
export function readPolicySource(fileName: string, text: string): Result<PolicySource, InputProblem> {
  const lines = new LineCounter();
  // yaml's own uniqueKeys check compares every key with every earlier one, which takes minutes
  // on a 4 MiB map; checkKeys does it with a set instead.
  const document = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: true });
  const problem = document.errors[0] ?? document.warnings[0];
  if (problem !== undefined) {
    return { ok: false, error: { line: problem.linePos?.[0].line, message: withoutPosition(problem.message) } };
  }
  const keys = checkKeys(document, lines);
  if (keys !== undefined) return { ok: false, error: keys };
  if (/\.json$/i.test(fileName)) {
    const json = checkJson(text, lines);
    if (json !== undefined) return { ok: false, error: json };
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (reason) {
    // yaml throws a ReferenceError for too many aliases; anything else is a bug and rethrown.
    if (!(reason instanceof ReferenceError)) throw reason;
    return { ok: false, error: { message: `${reason.message}; expand the aliases or use fewer` } };
  }
  return { ok: true, value: { value, lineOf: (path) => lineOf(document, lines, path) } };
}

// yaml's pretty messages end with " at line L, column C:" and a snippet; the line is reported apart.
function withoutPosition(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:$/, "");
}

function checkKeys(document: Document, lines: LineCounter): InputProblem | undefined {
  let problem: InputProblem | undefined;
  visit(document, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const { key } of map.items) {
        const line = lineAt(key, lines);
        if (!isScalar(key)) problem = { line, message: "a key is a list, a map or empty; keys must be plain names" };
        else if (seen.has(String(key.value))) problem = { line, message: `duplicate key ${describeValue(String(key.value))}` };
        else seen.add(String(key.value));
        if (problem !== undefined) return visit.BREAK;
      }
      return undefined;
    },
  });
  return problem;
}

function checkJson(text: string, lines: LineCounter): InputProblem | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (reason) {
    if (!(reason instanceof SyntaxError)) throw reason;
    const position = /at position (\d+)/.exec(reason.message)?.[1];
    const line = position === undefined ? undefined : lines.linePos(Number(position)).line;
    return { line, message: `not JSON: ${reason.message}` };
  }
}

function lineOf(document: Document, lines: LineCounter, path: readonly (string | number)[]): number | undefined {
  let node: unknown = document.contents;
  let line = lineAt(node, lines);
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (pair === undefined) break;
      line = lineAt(pair.key, lines) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof key === "number" && key < node.items.length) {
      node = node.items[key];
      line = lineAt(node, lines) ?? line;
    } else {
      break;
    }
  }
  return line;
}

function lineAt(node: unknown, lines: LineCounter): number | undefined {
  const range = (node as { range?: readonly number[] } | null)?.range;
  return range?.[0] === undefined ? undefined : lines.linePos(range[0]).line;
}
