import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { eachMessage } from "./each-message.ts";

const objects = () => new PassThrough({ objectMode: true });

describe("eachMessage", () => {
  it("eachMessage - handles every message in order, one at a time, and resolves at the end", async () => {
    const stream = objects();
    const seen: string[] = [];
    let active = 0;
    const done = eachMessage<number>(stream, async (n) => {
      active += 1;
      seen.push(`start ${n} (${active} active)`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      active -= 1;
    });
    [1, 2, 3].forEach((n) => stream.write(n));
    stream.end();
    await done;
    expect(seen).toEqual(["start 1 (1 active)", "start 2 (1 active)", "start 3 (1 active)"]);
  });

  it("eachMessage - rejects with the handler's failure and leaves the stream open for a status", async () => {
    const stream = objects();
    const done = eachMessage<number>(stream, async (n) => {
      if (n === 2) throw new Error("refused 2");
    });
    [1, 2, 3].forEach((n) => stream.write(n));
    await expect(done).rejects.toThrow("refused 2");
    expect(stream.destroyed).toBe(false);
  });

  it("eachMessage - a stream destroyed before its end (a cancelled call) rejects as aborted, after the message in hand", async () => {
    const stream = objects();
    const handled: number[] = [];
    const done = eachMessage<number>(stream, async (n) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      handled.push(n);
    });
    stream.write(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    stream.destroy();
    await expect(done).rejects.toMatchObject({ code: "aborted", rawMessage: "the stream was closed before its end" });
    expect(handled).toEqual([1]);
  });
});
