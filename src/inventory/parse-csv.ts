import type { Result } from "../errors.ts";

/** One CSV record and the 1-based physical line it starts on. */
export interface CsvRecord {
  readonly line: number;
  readonly fields: readonly string[];
}

/** Why the text is not RFC 4180 CSV, and the line where the bad record or field starts. */
export interface CsvSyntaxError {
  readonly line: number;
  readonly message: string;
}

/**
 * Splits RFC 4180 text into records: fields in double quotes may hold the delimiter, line
 * breaks and doubled quotes; records end with CRLF or LF. Empty lines are skipped, since
 * spreadsheets add them at the end and they hold no data. Field counts are not checked here.
 */
export function parseCsv(text: string, delimiter: "," | ";"): Result<CsvRecord[], CsvSyntaxError> {
  const reader = new CsvReader(text, delimiter);
  try {
    return { ok: true, value: reader.records() };
  } catch (reason) {
    if (reason instanceof CsvFailure) return { ok: false, error: { line: reason.line, message: reason.message } };
    throw reason;
  }
}

// Unwinds the reader at the first error; parseCsv turns it into a value, so it never escapes.
class CsvFailure extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

// Unrolled `(""|[^"])*` so that long quoted fields do not backtrack.
const QUOTED = /"([^"]*(?:""[^"]*)*)"/y;

class CsvReader {
  private pos = 0;
  private line = 1;
  private readonly plain: RegExp;

  constructor(
    private readonly text: string,
    private readonly delimiter: "," | ";",
  ) {
    this.plain = new RegExp(`[^"\\r\\n${delimiter}]*`, "y");
  }

  records(): CsvRecord[] {
    const records: CsvRecord[] = [];
    while (this.pos < this.text.length) {
      if (!this.lineEnd()) records.push(this.record());
    }
    return records;
  }

  private record(): CsvRecord {
    const line = this.line;
    const fields: string[] = [];
    for (;;) {
      fields.push(this.text[this.pos] === '"' ? this.quoted() : this.unquoted());
      const next = this.text[this.pos];
      if (next === this.delimiter) this.pos++;
      else if (next === undefined || this.lineEnd()) return { line, fields };
      else throw new CsvFailure(this.line, unexpected(next, this.delimiter));
    }
  }

  private quoted(): string {
    QUOTED.lastIndex = this.pos;
    const match = QUOTED.exec(this.text);
    if (match === null) throw new CsvFailure(this.line, "a quoted field has no closing quote");
    this.pos = QUOTED.lastIndex;
    this.line += match[0].split("\n").length - 1;
    return (match[1] ?? "").replaceAll('""', '"');
  }

  private unquoted(): string {
    this.plain.lastIndex = this.pos;
    const value = this.plain.exec(this.text)?.[0] ?? "";
    this.pos = this.plain.lastIndex;
    return value;
  }

  private lineEnd(): boolean {
    const size = this.text.startsWith("\r\n", this.pos) ? 2 : this.text[this.pos] === "\n" ? 1 : 0;
    this.pos += size;
    if (size > 0) this.line++;
    return size > 0;
  }
}

function unexpected(char: string, delimiter: string): string {
  if (char === '"') return 'unexpected quote; put the whole field in quotes and double the quotes inside it';
  if (char === "\r") return "carriage return without a line feed; lines must end with CRLF or LF";
  return `unexpected ${JSON.stringify(char)} after a closing quote; expected "${delimiter}" or a line end`;
}
