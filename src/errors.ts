/**
 * The one error type of vmtree. Every failure that crosses a module boundary is a
 * `VmtreeError` with a stable `code`; the gRPC status and the CLI exit code are derived
 * from that code in one place each (`link/status.ts`, `cli/main.ts`).
 */
export type ErrorCode =
  | "invalid_argument"
  | "invalid_input"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "unauthenticated"
  | "failed_precondition"
  | "unavailable"
  | "deadline_exceeded"
  | "aborted"
  | "resource_exhausted"
  | "data_loss"
  | "internal";

export class VmtreeError extends Error {
  override readonly name = "VmtreeError";
  readonly code: ErrorCode;
  /** The message without the `[code]` prefix, for callers that format it themselves. */
  readonly rawMessage: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(`[${code}] ${message}`, options);
    this.code = code;
    this.rawMessage = message;
  }

  /**
   * Wraps any thrown value. A `VmtreeError` is returned as it is; an AbortError or
   * TimeoutError becomes `aborted` or `deadline_exceeded`; everything else is `internal`
   * with the original as `cause`.
   */
  static from(reason: unknown, fallback: ErrorCode = "internal"): VmtreeError {
    if (reason instanceof VmtreeError) return reason;
    if (reason instanceof Error) {
      if (reason.name === "AbortError") return new VmtreeError("aborted", reason.message, { cause: reason });
      if (reason.name === "TimeoutError") return new VmtreeError("deadline_exceeded", reason.message, { cause: reason });
      return new VmtreeError(fallback, reason.message, { cause: reason });
    }
    return new VmtreeError(fallback, String(reason), { cause: reason });
  }
}

/** An expected failure as a value; bugs still throw. */
export type Result<T, E = VmtreeError> = { ok: true; value: T } | { ok: false; error: E };
