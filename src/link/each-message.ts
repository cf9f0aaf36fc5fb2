import type { Readable } from "node:stream";

/**
 * Handles a stream's messages one at a time, in order, pausing the stream while a message
 * is handled. Resolves when the stream ends and every message was handled; rejects with the
 * first handler's failure or the stream's error. Unlike `for await`, leaving early does not
 * destroy the stream: a gRPC server can still end the call with the refusal's status.
 */
export function eachMessage<T>(stream: Readable, handle: (message: T) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    let handling = Promise.resolve();
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      stream.off("data", onData).off("end", onEnd).off("error", finish);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (message: T) => {
      stream.pause();
      handling = handling.then(() => (done ? undefined : handle(message))).then(
        () => void (done || stream.resume()),
        (error: unknown) => finish(error),
      );
    };
    const onEnd = () => void handling.then(() => finish());
    stream.on("data", onData).on("end", onEnd).on("error", finish);
  });
}
