import type { EventEmitter } from "node:events";

/**
 * Resolves when a stream whose `write()` returned false may be written again, or
 * when it closes or fails (the caller's next write or read then reports that);
 * removes its listeners either way.
 */
export function waitForDrain(stream: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      stream.off("error", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
    stream.on("error", done);
  });
}
