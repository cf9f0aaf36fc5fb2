import type { sendUnaryData, ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import { toServiceError } from "./status.ts";

/**
 * A request message that did not decode, handed to the handler in its place. When grpc-js
 * fails to decode a message itself it ends the call with INTERNAL, and a response the
 * handler writes after that leaves the call with no status at all (the client waits for
 * its deadline); decoding never fails inside grpc-js this way, and the handler refuses
 * the message like any other invalid one.
 */
export class Undecodable {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

/** Throws INVALID_ARGUMENT when `message` did not decode. */
export function refuseUndecodable(message: unknown, method: string): void {
  if (message instanceof Undecodable) throw new VmtreeError("invalid_argument", `a ${method} message does not decode: ${message.reason}`);
}

/**
 * `definition` with request decoding that yields {@link Undecodable} instead of throwing,
 * and `implementation` with every unary handler refusing such a request. Stream handlers
 * refuse it through `eachMessage`.
 */
export function withTolerantDecoding<S extends ServiceDefinition>(
  definition: S,
  implementation: UntypedServiceImplementation,
): { definition: S; implementation: UntypedServiceImplementation } {
  const tolerant: Record<string, ServiceDefinition[string]> = {};
  const guarded: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return new Undecodable(error instanceof Error ? error.message : String(error));
        }
      },
    };
    const handler = implementation[name];
    if (!handler) continue;
    guarded[name] =
      method.requestStream || method.responseStream
        ? handler
        : (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
            if (call.request instanceof Undecodable) {
              const rpc = method.path.split("/").at(-1);
              return callback(toServiceError(new VmtreeError("invalid_argument", `a ${rpc} request does not decode: ${call.request.reason}`)));
            }
            (handler as (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void)(call, callback);
          };
  }
  return { definition: tolerant as unknown as S, implementation: guarded };
}
