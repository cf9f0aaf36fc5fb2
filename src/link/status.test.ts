import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { type ErrorCode, VmtreeError } from "../errors.ts";
import { fromServiceError, toServiceError } from "./status.ts";

/**
 * The gRPC status each ErrorCode must travel as. A Record, so that the compiler fails
 * this file when an ErrorCode is added without a row here.
 */
const GRPC_STATUS_BY_CODE: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  invalid_input: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  failed_precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  aborted: status.ABORTED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  data_loss: status.DATA_LOSS,
  internal: status.INTERNAL,
};
const GRPC_STATUS = Object.entries(GRPC_STATUS_BY_CODE) as [ErrorCode, status][];

const CODE_HEADER = "vmtree-error-code";

function serviceError(code: status, details: string, headerCode?: string): Partial<ServiceError> {
  const metadata = new Metadata();
  if (headerCode !== undefined) metadata.set(CODE_HEADER, headerCode);
  return { code, details, metadata };
}

describe("toServiceError", () => {
  it("toServiceError - the table covers all 13 ErrorCodes", () => {
    expect(GRPC_STATUS).toHaveLength(13);
  });

  it.each(GRPC_STATUS)("toServiceError - sends %s as gRPC status %i with the code in metadata", (code, grpcStatus) => {
    const sent = toServiceError(new VmtreeError(code, "site kz.ast may not send data for kz.ala.metro-01"));
    expect(sent.code).toBe(grpcStatus);
    expect(sent.metadata?.get(CODE_HEADER)).toEqual([code]);
    expect(sent.details).toBe(code === "internal" ? "internal error" : "site kz.ast may not send data for kz.ala.metro-01");
  });

  it("toServiceError - sends the message without the [code] prefix", () => {
    expect(toServiceError(new VmtreeError("not_found", "no camera cam-1")).details).toBe("no camera cam-1");
  });

  it("toServiceError - does not leak the detail of an internal error", () => {
    const leaks = [
      new VmtreeError("internal", "cannot open /var/lib/vmtree/store: password=hunter2"),
      new Error("ENOENT /var/lib/vmtree/tls/ca.key password=hunter2"),
      "password=hunter2",
      { password: "hunter2" },
    ];
    for (const reason of leaks) {
      const sent = toServiceError(reason);
      expect(sent).toMatchObject({ code: status.INTERNAL, details: "internal error" });
      expect(sent.metadata?.get(CODE_HEADER)).toEqual(["internal"]);
      expect(JSON.stringify({ details: sent.details, metadata: sent.metadata?.getMap() })).not.toContain("hunter2");
    }
  });

  it("toServiceError - maps AbortError and TimeoutError", () => {
    const abort = new Error("the operation was aborted");
    abort.name = "AbortError";
    const timeout = new Error("timed out after 15 s");
    timeout.name = "TimeoutError";
    expect(toServiceError(abort)).toMatchObject({ code: status.ABORTED, details: "the operation was aborted" });
    expect(toServiceError(timeout)).toMatchObject({ code: status.DEADLINE_EXCEEDED, details: "timed out after 15 s" });
    expect(toServiceError(AbortSignal.abort().reason)).toMatchObject({ code: status.ABORTED });
  });
});

describe("fromServiceError", () => {
  it.each(GRPC_STATUS)("fromServiceError - rebuilds %s from toServiceError", (code) => {
    const sent = toServiceError(new VmtreeError(code, "the join token is malformed"));
    const received = fromServiceError(sent);
    expect(received).toBeInstanceOf(VmtreeError);
    expect(received.code).toBe(code);
    expect(received.rawMessage).toBe(code === "internal" ? "internal error" : "the join token is malformed");
    expect(received.message).toBe(`[${code}] ${received.rawMessage}`);
    expect(received.cause).toBe(sent);
  });

  it("fromServiceError - tells invalid_input from invalid_argument by the metadata", () => {
    expect(fromServiceError(serviceError(status.INVALID_ARGUMENT, "x", "invalid_input")).code).toBe("invalid_input");
    expect(fromServiceError(serviceError(status.INVALID_ARGUMENT, "x", "invalid_argument")).code).toBe("invalid_argument");
  });

  it.each([
    [status.INVALID_ARGUMENT, "invalid_argument"],
    [status.NOT_FOUND, "not_found"],
    [status.PERMISSION_DENIED, "permission_denied"],
    [status.UNAVAILABLE, "unavailable"],
    [status.DEADLINE_EXCEEDED, "deadline_exceeded"],
    [status.UNKNOWN, "internal"],
    [status.UNIMPLEMENTED, "internal"],
  ] as const)("fromServiceError - maps status %i without metadata to %s", (grpcStatus, code) => {
    const received = fromServiceError(serviceError(grpcStatus, "No connection established"));
    expect(received.code).toBe(code);
    expect(received.rawMessage).toBe("No connection established");
  });

  it("fromServiceError - falls back to the status code for an unknown code header", () => {
    expect(fromServiceError(serviceError(status.UNAVAILABLE, "down", "exploded")).code).toBe("unavailable");
  });

  it("fromServiceError - uses the status name when details are empty", () => {
    expect(fromServiceError(serviceError(status.UNAVAILABLE, "")).rawMessage).toBe("UNAVAILABLE");
    expect(fromServiceError({ code: status.NOT_FOUND }).rawMessage).toBe("NOT_FOUND");
  });

  it("fromServiceError - returns a VmtreeError as it is", () => {
    const error = new VmtreeError("aborted", "closing");
    expect(fromServiceError(error)).toBe(error);
  });

  it("fromServiceError - wraps a value without a status code as internal", () => {
    const plain = new Error("socket hang up");
    const received = fromServiceError(plain);
    expect(received.code).toBe("internal");
    expect(received.rawMessage).toBe("socket hang up");
    expect(received.cause).toBe(plain);
    expect(fromServiceError("weird").code).toBe("internal");
  });

  // A peer may send any string as the code header, including inherited property names.
  it.each(["toString", "constructor", "__proto__", "hasOwnProperty"])(
    "fromServiceError - ignores the inherited name %s as a code header",
    (header) => {
      expect(fromServiceError(serviceError(status.UNAVAILABLE, "down", header)).code).toBe("unavailable");
    },
  );
});
