import { Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { fromServiceError } from "./status.ts";

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * Makes one unary call with a deadline and resolves with its response.
 * Rejects with the `VmtreeError` rebuilt from the call's status.
 */
export function unaryCall<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number, metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) reject(fromServiceError(error));
      else resolve(response);
    });
  });
}
