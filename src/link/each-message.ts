import type { Readable } from "node:stream";
import { VmtreeError } from "../errors.ts";
import { refuseUndecodable } from "./undecodable.ts";

/**
 * Handles a stream's messages one at a time, in order, pausing the stream while a message
 * is handled. Resolves when the stream ends and every message was handled; rejects with the
 * first handler's failure, the stream's error, or `aborted` when the stream is destroyed
 * before its end (grpc-js destroys a server call its client cancelled, without an `end`).
 * A message that did not decode (see `withTolerantDecoding`) is refused as INVALID_ARGUMENT.
 * Unlike `for await`, leaving early does not destroy the stream: a gRPC server can still end
 * the call with the refusal's status.
 */
export function eachMessage<T>(stream: Readable, handle: (message: T) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    let ended = false;
    let handling = Promise.resolve();
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      stream.off("data", onData).off("end", onEnd).off("error", finish).off("close", onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (message: T) => {
      stream.pause();
      handling = handling.then(() => {
        if (done) return;
        refuseUndecodable(message, methodOf(stream));
        return handle(message);
      }).then(
        () => void (done || stream.resume()),
        (error: unknown) => finish(error),
      );
    };
    const onEnd = () => {
      ended = true;
      void handling.then(() => finish());
    };
    const onClose = () => {
      if (!ended) void handling.then(() => finish(new VmtreeError("aborted", "the stream was closed before its end")));
    };
    stream.on("data", onData).on("end", onEnd).on("error", finish).on("close", onClose);
  });
}

/** The gRPC method a server stream serves (its last path segment), for error messages. */
function methodOf(stream: Readable): string {
  const path = (stream as Partial<{ getPath(): string }>).getPath?.();
  return path?.split("/").at(-1) ?? "stream";
}
