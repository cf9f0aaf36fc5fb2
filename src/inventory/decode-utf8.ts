import type { Result } from "../errors.ts";

/** Where the first byte sequence that is not UTF-8 starts. */
export interface Utf8Problem {
  /** 0-based offset in the bytes, a BOM included. */
  readonly offset: number;
  /** 1-based line of that offset. */
  readonly line: number;
  readonly byte: number;
}

const REPLACEMENT = "\uFFFD";

/**
 * Decodes strict UTF-8 and drops a leading BOM. Fails on the first invalid sequence
 * (overlong forms, surrogates and truncated sequences included) instead of replacing it,
 * because a silently replaced byte would corrupt names and addresses.
 */
export function decodeUtf8(bytes: Uint8Array): Result<string, Utf8Problem> {
  let text: string;
  try {
    // ignoreBOM keeps the BOM in the text so that offsets found later count its bytes.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (reason) {
    if (!(reason instanceof TypeError)) throw reason;
    return { ok: false, error: locateInvalidUtf8(bytes) };
  }
  return { ok: true, value: text.startsWith("\uFEFF") ? text.slice(1) : text };
}

// The lenient decoder marks each invalid sequence with U+FFFD; everything before the first
// mark is valid, so re-encoding that prefix gives the byte offset. A U+FFFD that the file
// really contains (bytes EF BF BD) is skipped.
function locateInvalidUtf8(bytes: Uint8Array): Utf8Problem {
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  const encoder = new TextEncoder();
  for (let at = text.indexOf(REPLACEMENT); at !== -1; at = text.indexOf(REPLACEMENT, at + 1)) {
    const prefix = text.slice(0, at);
    const offset = encoder.encode(prefix).length;
    if (bytes[offset] !== 0xef || bytes[offset + 1] !== 0xbf || bytes[offset + 2] !== 0xbd) {
      return { offset, line: prefix.split("\n").length, byte: bytes[offset] ?? 0 };
    }
  }
  throw new Error("strict UTF-8 decoding failed but lenient decoding replaced nothing");
}
