import { describe, expect, it } from "vitest";
import { SerialQueue } from "./serial-queue.ts";

/** A promise with its resolve and reject exposed. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("SerialQueue", () => {
  it("SerialQueue - resolves each run with its own task's value", async () => {
    const queue = new SerialQueue();
    const results = await Promise.all([queue.run(async () => 1), queue.run(async () => "two"), queue.run(async () => ({ three: 3 }))]);
    expect(results).toEqual([1, "two", { three: 3 }]);
  });

  it("SerialQueue - runs tasks one at a time in the order they were added", async () => {
    const queue = new SerialQueue();
    const events: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const task = (name: string, ms: number) => async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      events.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      events.push(`end ${name}`);
      running -= 1;
      return name;
    };
    const results = await Promise.all([queue.run(task("a", 20)), queue.run(task("b", 1)), queue.run(task("c", 10))]);
    expect(results).toEqual(["a", "b", "c"]);
    expect(events).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
    expect(maxRunning).toBe(1);
  });

  it("SerialQueue - does not start a task before the previous one settles", async () => {
    const queue = new SerialQueue();
    const first = deferred<string>();
    let secondStarted = false;
    const one = queue.run(() => first.promise);
    const two = queue.run(async () => {
      secondStarted = true;
      return "second";
    });
    await tick();
    expect(secondStarted).toBe(false);
    first.resolve("first");
    expect(await one).toBe("first");
    expect(await two).toBe("second");
    expect(secondStarted).toBe(true);
  });

  it("SerialQueue - rejects only the failing task's run and goes on with the next", async () => {
    const queue = new SerialQueue();
    const failure = new Error("batch failed");
    const first = queue.run(async () => {
      throw failure;
    });
    const second = queue.run(async () => "after");
    await expect(first).rejects.toBe(failure);
    await expect(second).resolves.toBe("after");
  });

  it("SerialQueue - waits for a failing task to settle before the next starts", async () => {
    const queue = new SerialQueue();
    const first = deferred<never>();
    let secondStarted = false;
    const one = queue.run(() => first.promise);
    const two = queue.run(async () => {
      secondStarted = true;
    });
    await tick();
    expect(secondStarted).toBe(false);
    first.reject(new Error("late failure"));
    await expect(one).rejects.toThrow("late failure");
    await two;
    expect(secondStarted).toBe(true);
  });

  it("SerialQueue - turns a synchronous throw into a rejection of that run", async () => {
    const queue = new SerialQueue();
    const failure = new TypeError("bad input");
    const run = queue.run((() => {
      throw failure;
    }) as () => Promise<void>);
    await expect(run).rejects.toBe(failure);
    await expect(queue.run(async () => 42)).resolves.toBe(42);
  });

  it("SerialQueue - runs a task added by a running task after the running one", async () => {
    const queue = new SerialQueue();
    const events: string[] = [];
    let inner: Promise<void> | undefined;
    await queue.run(async () => {
      events.push("outer start");
      inner = queue.run(async () => {
        events.push("inner");
      });
      await tick();
      events.push("outer end");
    });
    await inner;
    expect(events).toEqual(["outer start", "outer end", "inner"]);
  });

  it("SerialQueue - keeps separate queues independent", async () => {
    const a = new SerialQueue();
    const b = new SerialQueue();
    const blocker = deferred();
    const blocked = a.run(() => blocker.promise);
    await expect(b.run(async () => "b is free")).resolves.toBe("b is free");
    blocker.resolve();
    await blocked;
  });
});
