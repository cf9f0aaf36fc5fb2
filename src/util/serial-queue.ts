/**
 * Runs async tasks one at a time in the order they were added. Read-modify-write
 * sequences on the store go through one of these so that two writers never
 * interleave between their read and their batch.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Resolves or rejects with `task`'s outcome once every earlier task has settled. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    // The queue only orders tasks; each caller observes its own task's failure.
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
