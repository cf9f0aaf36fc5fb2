import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { type ErrorCode, VmtreeError } from "../errors.ts";

const TO_GRPC: Readonly<Record<ErrorCode, status>> = {
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

const CODE_HEADER = "vmtree-error-code";

/**
 * The one place where a `VmtreeError` becomes a gRPC status. The stable code also
 * travels in trailing metadata so that the other end can rebuild the same error.
 * Internal errors keep their detail in the local log, not on the wire.
 */
export function toServiceError(reason: unknown): Partial<ServiceError> {
  const error = VmtreeError.from(reason);
  const metadata = new Metadata();
  metadata.set(CODE_HEADER, error.code);
  const details = error.code === "internal" ? "internal error" : error.rawMessage;
  return { code: TO_GRPC[error.code], details, metadata };
}

/** Rebuilds a `VmtreeError` from a failed call. */
export function fromServiceError(reason: unknown): VmtreeError {
  if (reason instanceof VmtreeError) return reason;
  const serviceError = reason as Partial<ServiceError>;
  if (typeof serviceError.code !== "number") return VmtreeError.from(reason);
  const sent = serviceError.metadata?.get(CODE_HEADER)[0];
  const code = typeof sent === "string" && Object.hasOwn(TO_GRPC, sent) ? (sent as ErrorCode) : codeOf(serviceError.code);
  return new VmtreeError(code, serviceError.details || status[serviceError.code] || "call failed", { cause: reason });
}

function codeOf(grpcCode: status): ErrorCode {
  // A cancelled call means the other end went away (a peer restarting, a cut link).
  if (grpcCode === status.CANCELLED) return "unavailable";
  const found = Object.entries(TO_GRPC).find(([, value]) => value === grpcCode);
  return found ? (found[0] as ErrorCode) : "internal";
}
