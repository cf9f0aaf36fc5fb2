import type { Result } from "../errors.ts";

/** Where an object or array of a parsed document and its members start. */
export interface JsonLines {
  /** 1-based line of the opening `{` or `[`. */
  readonly line: number;
  /** Line of each key of an object, or of each item of an array keyed by its index as text. */
  readonly members: ReadonlyMap<string, number>;
}

/** A parsed JSON document that remembers the lines of its objects and arrays. */
export interface ParsedJson {
  readonly value: unknown;
  /** Lines of an object or array of `value`; throws for anything else, which is a bug. */
  linesOf(container: object): JsonLines;
}

/** Why the text is not JSON, and the line where the parser stopped. */
export interface JsonSyntaxError {
  readonly line: number;
  readonly message: string;
}

/**
 * Parses RFC 8259 JSON. Unlike `JSON.parse` it reports line numbers (for syntax errors and,
 * through `linesOf`, for every key), rejects duplicate keys instead of keeping the last one,
 * and keeps file content out of its messages so credentials in a broken file do not reach logs.
 * Nesting is limited to 64 levels so that hostile input cannot exhaust the stack.
 */
export function parseJson(text: string): Result<ParsedJson, JsonSyntaxError> {
  const reader = new JsonReader(text);
  try {
    const value = reader.document();
    return { ok: true, value: { value, linesOf: (container) => reader.linesOf(container) } };
  } catch (reason) {
    if (reason instanceof JsonFailure) return { ok: false, error: { line: reason.line, message: reason.message } };
    throw reason;
  }
}

// Unwinds the recursive descent at the first error; parseJson turns it into a value.
class JsonFailure extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;
const SPACE = /[ \t\r\n]*/y;
const STRING = /"(?:[^"\\\u0000-\u001f]+|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERALS = [
  ["true", true],
  ["false", false],
  ["null", null],
] as const;

class JsonReader {
  private pos = 0;
  private line = 1;
  private readonly lines = new WeakMap<object, JsonLines>();

  constructor(private readonly text: string) {}

  document(): unknown {
    const value = this.value(0);
    this.skipSpace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.found()} after the end of the JSON value`);
    return value;
  }

  linesOf(container: object): JsonLines {
    const lines = this.lines.get(container);
    if (lines === undefined) throw new Error("linesOf called with a value that the parser did not create");
    return lines;
  }

  private value(depth: number): unknown {
    this.skipSpace();
    const char = this.text[this.pos];
    if (char === "{" || char === "[") {
      if (depth >= MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
      return char === "{" ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (char === '"') return this.string();
    return this.scalar();
  }

  private object(depth: number): Record<string, unknown> {
    const lines = { line: this.line, members: new Map<string, number>() };
    const entries = new Map<string, unknown>();
    this.pos++;
    if (!this.close("}")) {
      do {
        this.skipSpace();
        if (this.text[this.pos] !== '"') this.fail(`expected a key in double quotes, got ${this.found()}`);
        const keyLine = this.line;
        const key = this.string();
        if (entries.has(key)) this.fail(`duplicate key ${JSON.stringify(key)}`);
        this.expect(":");
        lines.members.set(key, keyLine);
        entries.set(key, this.value(depth));
      } while (this.separator("}"));
    }
    // fromEntries defines own properties, so a "__proto__" key stays data.
    const object: Record<string, unknown> = Object.fromEntries(entries);
    this.lines.set(object, lines);
    return object;
  }

  private array(depth: number): unknown[] {
    const lines = { line: this.line, members: new Map<string, number>() };
    const items: unknown[] = [];
    this.pos++;
    if (!this.close("]")) {
      do {
        this.skipSpace();
        lines.members.set(String(items.length), this.line);
        items.push(this.value(depth));
      } while (this.separator("]"));
    }
    this.lines.set(items, lines);
    return items;
  }

  private string(): string {
    const token = this.match(STRING);
    if (token === undefined) this.fail("a string has no closing quote, a bad escape or a raw control character");
    return JSON.parse(token) as string;
  }

  private scalar(): unknown {
    const number = this.match(NUMBER);
    if (number !== undefined) return Number(number);
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(`expected a value, got ${this.found()}`);
  }

  private close(bracket: "}" | "]"): boolean {
    this.skipSpace();
    if (this.text[this.pos] !== bracket) return false;
    this.pos++;
    return true;
  }

  private separator(bracket: "}" | "]"): boolean {
    this.skipSpace();
    const char = this.text[this.pos];
    if (char !== "," && char !== bracket) this.fail(`expected "," or "${bracket}", got ${this.found()}`);
    this.pos++;
    return char === ",";
  }

  private expect(char: string): void {
    this.skipSpace();
    if (this.text[this.pos] !== char) this.fail(`expected "${char}", got ${this.found()}`);
    this.pos++;
  }

  private skipSpace(): void {
    const space = this.match(SPACE) ?? "";
    this.line += space.split("\n").length - 1;
  }

  private match(pattern: RegExp): string | undefined {
    pattern.lastIndex = this.pos;
    const token = pattern.exec(this.text)?.[0];
    if (token !== undefined) this.pos = pattern.lastIndex;
    return token;
  }

  // One character only: more could copy a password out of a broken stream_url into a log.
  private found(): string {
    const char = this.text.codePointAt(this.pos);
    return char === undefined ? "the end of the file" : JSON.stringify(String.fromCodePoint(char));
  }

  private fail(message: string): never {
    throw new JsonFailure(this.line, message);
  }
}
