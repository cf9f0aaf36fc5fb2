import { Metadata, type ChannelCredentials, type ClientDuplexStream } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import {
  ParentServiceClient,
  type Checkpoint,
  type HelloResponse,
  type SyncInventoryRequest,
  type SyncInventoryResponse,
} from "../gen/vmtree/v1/link.ts";
import type { InventoryReplica } from "../sync/inventory-replica.ts";
import type { UpstreamAcks } from "../sync/upstream-acks.ts";
import type { CameraChange } from "../gen/vmtree/v1/inventory.ts";
import { Backoff, delay } from "../util/backoff.ts";
import { waitForDrain } from "../util/drain.ts";
import type { Logger } from "../util/log.ts";
import { LINK_CLIENT_OPTIONS } from "./grpc-options.ts";
import { fromServiceError } from "./status.ts";
import { channelOptionsFor } from "./tls.ts";

/** Options of {@link Uplink}. */
export interface UplinkOptions {
  site: string;
  epoch: number;
  parentSite: string;
  address: string;
  credentials: () => ChannelCredentials;
  replica: InventoryReplica;
  acks: UpstreamAcks;
  log: Logger;
  /** Changes per batch. */
  batchSize?: number;
  /** Batches sent and not yet acknowledged. */
  window?: number;
  backoff?: Backoff;
}

/** The child's view of its parent link, for `vmtree status`. */
export interface UplinkState {
  site: string;
  address: string;
  /** `disconnected` until a hello succeeds, also while reconnecting. */
  state: "connected" | "disconnected";
  sinceMs: number;
  lastSyncMs: number;
  /** Changes sent and acknowledged since this node started. */
  sent: number;
  lastError: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The link from a child to its parent: dials, says hello, then streams every change
 * the parent has not acknowledged, oldest first per origin, and keeps streaming new
 * ones as they are written. A broken link is redialled with capped, jittered backoff
 * that resets after a good session. The child's data never depends on the link:
 * the parent's checkpoints, learned at each hello, decide what is sent again.
 */
export class Uplink {
  readonly #options: UplinkOptions;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  readonly #state: UplinkState;
  #running: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: UplinkOptions) {
    this.#options = options;
    this.#backoff = options.backoff ?? new Backoff({ initialMs: 500, maxMs: 15_000, jitter: 0.3 });
    this.#state = {
      site: options.parentSite,
      address: options.address,
      state: "disconnected",
      sinceMs: Date.now(),
      lastSyncMs: 0,
      sent: 0,
      lastError: "",
    };
  }

  /** Starts the connect loop; returns at once. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** A copy of the link state. */
  state(): UplinkState {
    return { ...this.#state };
  }

  /** Stops the link; idempotent, resolves when the current session has ended. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort.abort(new VmtreeError("aborted", "uplink closed"));
      await this.#running;
    })();
    return this.#closing;
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        await this.#session(signal);
      } catch (reason) {
        if (signal.aborted) break;
        const error = fromServiceError(reason);
        this.#state.lastError = error.message;
        this.#options.log.warn("parent link down", { parent: this.#options.parentSite, reason: error.message });
      }
      this.#setState("disconnected");
      await delay(this.#backoff.next(), signal).catch(() => undefined);
    }
    this.#setState("disconnected");
  }

  async #session(signal: AbortSignal): Promise<void> {
    const client = new ParentServiceClient(this.#options.address, this.#options.credentials(), {
      ...LINK_CLIENT_OPTIONS,
      ...channelOptionsFor(this.#options.parentSite),
    });
    const onAbort = () => client.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const hello = await this.#hello(client);
      this.#backoff.reset();
      this.#state.lastError = "";
      this.#setState("connected");
      this.#options.log.info("parent link up", { parent: this.#options.parentSite, address: this.#options.address });
      await this.#options.acks.save(hello.checkpoints);
      await this.#stream(client, hello.checkpoints, signal);
    } finally {
      signal.removeEventListener("abort", onAbort);
      client.close();
    }
  }

  #hello(client: ParentServiceClient): Promise<HelloResponse> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + CONNECT_TIMEOUT_MS;
      client.waitForReady(deadline, (error) => {
        if (error) return reject(new VmtreeError("unavailable", `parent ${this.#options.address} unreachable: ${error.message}`));
        void this.#options.acks.pending().then((pending) => {
          client.hello({ epoch: this.#options.epoch, pending }, new Metadata(), { deadline }, (callError, response) => {
            if (callError || !response) reject(fromServiceError(callError));
            else if (response.parent_site !== this.#options.parentSite) {
              reject(new VmtreeError("permission_denied", `expected parent ${this.#options.parentSite}, reached ${response.parent_site}`));
            } else resolve(response);
          });
        }, reject);
      });
    });
  }

  /** Streams batches until the stream fails or the link is closed. */
  async #stream(client: ParentServiceClient, parentCheckpoints: Checkpoint[], signal: AbortSignal): Promise<void> {
    const { replica } = this.#options;
    const batchSize = this.#options.batchSize ?? 500;
    const window = this.#options.window ?? 4;
    const fromParent = new Map(parentCheckpoints.map((c) => [c.origin, c]));
    const cursors = new Map<string, Checkpoint>();
    const inFlight = new Map<number, number>();
    let nextBatchId = 1;
    let wake: (() => void) | undefined;
    const notify = () => wake?.();
    let failure: VmtreeError | undefined;
    const fail = (error: VmtreeError) => {
      failure ??= error;
      notify();
    };
    const call: ClientDuplexStream<SyncInventoryRequest, SyncInventoryResponse> = client.syncInventory();
    call.on("data", (ack: SyncInventoryResponse) => {
      this.#state.sent += inFlight.get(ack.batch_id) ?? 0;
      this.#state.lastSyncMs = Date.now();
      inFlight.delete(ack.batch_id);
      this.#options.acks.save(ack.checkpoints).then(notify, (reason: unknown) => fail(VmtreeError.from(reason)));
    });
    call.on("error", (error) => fail(fromServiceError(error)));
    call.on("end", () => fail(new VmtreeError("unavailable", "the parent ended the sync stream")));
    const onAbort = () => notify();
    replica.on("change", notify);
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted && failure === undefined) {
        const woken = new Promise<void>((resolve) => (wake = resolve));
        if (inFlight.size >= window) {
          await woken;
          continue;
        }
        const { changes, newEpochs } = await this.#nextChanges(cursors, fromParent, batchSize);
        if (changes.length === 0 && newEpochs.length === 0) {
          await woken;
          continue;
        }
        const batchId = nextBatchId++;
        inFlight.set(batchId, changes.length);
        if (!call.write({ batch_id: batchId, changes, pending: 0, new_epochs: newEpochs })) await waitForDrain(call);
      }
      if (failure !== undefined) throw failure;
    } finally {
      replica.off("change", notify);
      signal.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  /**
   * Reads the next changes past each origin's cursor and advances the cursors. The epoch
   * of each origin is announced when its cursor starts, so that the parent drops an old
   * incarnation even when the new one has no changes yet.
   */
  async #nextChanges(cursors: Map<string, Checkpoint>, fromParent: Map<string, Checkpoint>, limit: number) {
    const batch: CameraChange[] = [];
    const newEpochs: Checkpoint[] = [];
    for (const local of await this.#options.replica.origins()) {
      if (batch.length >= limit) break;
      let cursor = cursors.get(local.origin);
      if (!cursor || cursor.epoch !== local.epoch) {
        const parent = fromParent.get(local.origin);
        // The parent already knows a newer incarnation of this origin: what we hold is stale.
        if (parent && parent.epoch > local.epoch) continue;
        // Announced whenever a cursor starts, since the parent may have received an older
        // epoch earlier in this very session; announcing a known epoch changes nothing.
        if (!parent || parent.epoch < local.epoch) newEpochs.push({ origin: local.origin, epoch: local.epoch, seq: 0 });
        cursor = { origin: local.origin, epoch: local.epoch, seq: parent?.epoch === local.epoch ? parent.seq : 0 };
        cursors.set(local.origin, cursor);
      }
      const changes = await this.#options.replica.changesAfter(local.origin, local.epoch, cursor.seq, limit - batch.length);
      const last = changes.at(-1);
      if (last) cursor.seq = last.seq;
      batch.push(...changes);
    }
    return { changes: batch, newEpochs };
  }

  #setState(state: UplinkState["state"]): void {
    if (this.#state.state === state) return;
    this.#state.state = state;
    this.#state.sinceMs = Date.now();
  }
}
