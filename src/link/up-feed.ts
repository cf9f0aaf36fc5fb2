import type { EventEmitter } from "node:events";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { waitForDrain } from "../util/drain.ts";
import { fromServiceError } from "./status.ts";

/** A batch ready to send and how many items it carries. */
export interface FeedBatch<Req> {
  request: Omit<Req, "batch_id">;
  count: number;
}

/**
 * One kind of data a child sends up its link (inventory changes, audit entries): where
 * its items come from, how they are batched past the parent's checkpoints, and what
 * an acknowledgement means. One instance lives for one link session.
 */
export interface UpFeed<Req extends { batch_id: number }, Res extends { batch_id: number }> {
  readonly name: string;
  /** Emits `change` when there may be more to send. */
  readonly source: EventEmitter<{ change: [] }>;
  open(client: ParentServiceClient): ClientDuplexStream<Req, Res>;
  /** The next batch past the cursors, advancing them; undefined when nothing waits. */
  next(limit: number): Promise<FeedBatch<Req> | undefined>;
  /** Handles the parent's acknowledgement of a batch of `count` items. */
  acknowledged(response: Res, count: number): Promise<void>;
}

/** Options of {@link streamFeed}. */
export interface StreamFeedOptions {
  batchSize: number;
  /** Batches sent and not yet acknowledged. */
  window: number;
  signal: AbortSignal;
  /** Called after each acknowledgement has been handled. */
  onAcknowledged?: () => void;
}

/**
 * Streams a feed's batches until the stream fails (rejects with the reason) or the
 * signal aborts (resolves). At most `window` batches are unacknowledged at once and the
 * stream's backpressure is honoured; delivery is proved only by acknowledgements.
 */
export async function streamFeed<Req extends { batch_id: number }, Res extends { batch_id: number }>(
  feed: UpFeed<Req, Res>,
  client: ParentServiceClient,
  options: StreamFeedOptions,
): Promise<void> {
  const { signal } = options;
  const inFlight = new Map<number, number>();
  let nextBatchId = 1;
  let wake: (() => void) | undefined;
  const notify = () => wake?.();
  let failure: VmtreeError | undefined;
  const fail = (error: VmtreeError) => {
    failure ??= error;
    notify();
  };
  const call = feed.open(client);
  call.on("data", (response: Res) => {
    const count = inFlight.get(response.batch_id) ?? 0;
    inFlight.delete(response.batch_id);
    feed.acknowledged(response, count).then(
      () => {
        options.onAcknowledged?.();
        notify();
      },
      (reason: unknown) => fail(VmtreeError.from(reason)),
    );
  });
  call.on("error", (error) => fail(fromServiceError(error)));
  call.on("end", () => fail(new VmtreeError("unavailable", `the parent ended the ${feed.name} stream`)));
  feed.source.on("change", notify);
  signal.addEventListener("abort", notify);
  try {
    while (!signal.aborted && failure === undefined) {
      const woken = new Promise<void>((resolve) => (wake = resolve));
      if (inFlight.size >= options.window) {
        await woken;
        continue;
      }
      const batch = await feed.next(options.batchSize);
      if (!batch) {
        await woken;
        continue;
      }
      const batchId = nextBatchId++;
      inFlight.set(batchId, batch.count);
      if (!call.write({ ...batch.request, batch_id: batchId } as Req)) await waitForDrain(call);
    }
    if (failure !== undefined) throw failure;
  } finally {
    feed.source.off("change", notify);
    signal.removeEventListener("abort", notify);
    call.cancel();
  }
}
