import { Metadata, type ChannelCredentials } from "@grpc/grpc-js";
import { AuditFeed } from "../audit/audit-feed.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import { ParentServiceClient, type HelloResponse } from "../gen/vmtree/v1/link.ts";
import { InventoryFeed } from "../sync/inventory-feed.ts";
import { parentOwnAuditHead, rollbackProblem, type OwnProgress } from "../sync/rollback-check.ts";
import type { Revocations } from "../pki/revocations.ts";
import type { PolicyStore } from "../policy/policy-store.ts";
import type { NodeStore } from "../store/node-store.ts";
import type { InventoryReplica } from "../sync/inventory-replica.ts";
import type { UpstreamAcks } from "../sync/upstream-acks.ts";
import { Backoff, delay } from "../util/backoff.ts";
import type { Logger } from "../util/log.ts";
import { LINK_CLIENT_OPTIONS } from "./grpc-options.ts";
import type { Fragments } from "../transfer/fragments.ts";
import type { LinkCap } from "../transfer/link-cap.ts";
import { followCommands } from "./command-link.ts";
import { followPolicies, type PolicyFollower } from "./policy-link.ts";
import { fromServiceError } from "./status.ts";
import { channelOptionsFor } from "./tls.ts";
import { streamFeed } from "./up-feed.ts";

/** Options of {@link Uplink}. */
export interface UplinkOptions {
  site: string;
  epoch: number;
  parentSite: string;
  address: string;
  credentials: () => ChannelCredentials;
  replica: InventoryReplica;
  acks: UpstreamAcks;
  audit: AuditLog;
  policies: PolicyStore;
  revocations: Revocations;
  store: NodeStore;
  /** Fragment uploads and the commands stream; absent in tests of the sync streams alone. */
  fragments?: Fragments;
  cap?: LinkCap;
  log: Logger;
  /** Inventory changes per batch; default 500. */
  batchSize?: number;
  /**
   * Audit entries per batch; default 2000. Entries are small and a backlog can hold
   * millions, so larger batches spread the parent's synced write over more of them; the
   * feed also caps a batch's bytes.
   */
  auditBatchSize?: number;
  /** Batches sent and not yet acknowledged, per stream. */
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
  /** Inventory changes sent and acknowledged since this node started. */
  sent: number;
  /** Audit entries sent and acknowledged since this node started. */
  auditSent: number;
  /** Origins whose audit stream the parent has quarantined. */
  auditQuarantinedByParent: string[];
  /**
   * How old this node's policies are while it holds its parent's latest sets (its parent's
   * age, 0 when that is in sync too); undefined while it does not.
   */
  policyAgeMs: number | undefined;
  lastError: string;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** Audit entries per batch unless the options say otherwise (see {@link UplinkOptions.auditBatchSize}). */
export const DEFAULT_AUDIT_BATCH = 2_000;
const HISTORY_SECTION = "uplink-state";

/** What a stopped node still knows of its parent link: since when it is down, when it last synced. */
export type UplinkHistory = Pick<UplinkState, "sinceMs" | "lastSyncMs">;

/** The link history the node saved when it last ran, if it ever did. */
export function lastUplinkHistory(store: NodeStore): Promise<UplinkHistory | undefined> {
  return store.section<UplinkHistory>(HISTORY_SECTION).get("parent");
}

/**
 * The link from a child to its parent: dials, says hello, then streams inventory
 * changes and audit entries the parent has not acknowledged, oldest first per origin,
 * and keeps streaming new ones as they are written. A broken link is redialled with
 * capped, jittered backoff that resets after a good session. The parent's checkpoints
 * and heads, learned at each hello, decide what is sent again.
 */
export class Uplink {
  readonly #options: UplinkOptions;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  readonly #state: UplinkState;
  #feeds: { inventory: InventoryFeed; audit: AuditFeed } | undefined;
  #policies: PolicyFollower | undefined;
  #running: Promise<void> | undefined;
  /** Whether a rollback was logged and audited, so that the retries do not repeat it. */
  #refused = false;
  #closing: Promise<void> | undefined;
  /** Ends the current session; set while one runs. */
  #endCurrent: (() => void) | undefined;
  /** A connection made by {@link handOver}, for the next session. */
  #nextClient: ParentServiceClient | undefined;

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
      auditSent: 0,
      auditQuarantinedByParent: [],
      policyAgeMs: undefined,
      lastError: "",
    };
  }

  /** Starts the connect loop; returns at once. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** A copy of the link state, counting the current session's acknowledgements too. */
  state(): UplinkState {
    const feeds = this.#feeds;
    return {
      ...this.#state,
      sent: this.#state.sent + (feeds?.inventory.sent ?? 0),
      auditSent: this.#state.auditSent + (feeds?.audit.sent ?? 0),
      auditQuarantinedByParent: feeds?.audit.quarantinedByParent ?? this.#state.auditQuarantinedByParent,
      policyAgeMs: this.#policies?.ageMs(),
    };
  }

  /**
   * Moves the link to fresh credentials (after a certificate renewal) without dropping it:
   * a connection is made with them while the current session runs, and only once it is up
   * does the session end, to go on at once over the new connection. If that connection
   * cannot be made, the current session goes on; the next one uses the fresh credentials.
   */
  async handOver(): Promise<void> {
    if (!this.#endCurrent || this.#abort.signal.aborted) return;
    let client: ParentServiceClient | undefined;
    try {
      client = this.#newClient();
      await ready(client, Date.now() + CONNECT_TIMEOUT_MS);
    } catch (reason) {
      client?.close();
      this.#options.log.warn("parent link stays on its current credentials: a connection with the renewed ones failed", {
        parent: this.#options.parentSite,
        reason: VmtreeError.from(reason).message,
      });
      return;
    }
    if (!this.#endCurrent || this.#abort.signal.aborted) return client.close();
    this.#nextClient?.close();
    this.#nextClient = client;
    this.#endCurrent();
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
        if (!this.#nextClient) {
          const error = fromServiceError(reason);
          this.#state.lastError = error.message;
          this.#options.log.warn("parent link down", { parent: this.#options.parentSite, reason: error.message });
        }
      }
      const handedOver = this.#nextClient !== undefined;
      this.#endSession({ handedOver });
      if (handedOver) {
        this.#options.log.info("parent link handed over to renewed credentials", { parent: this.#options.parentSite });
        continue;
      }
      await delay(this.#backoff.next(), signal).catch(() => undefined);
    }
    this.#nextClient?.close();
    this.#nextClient = undefined;
    this.#endSession({ handedOver: false });
  }

  #newClient(extra: Record<string, number> = {}): ParentServiceClient {
    const { parentSite, address } = this.#options;
    return new ParentServiceClient(address, this.#options.credentials(), { ...LINK_CLIENT_OPTIONS, ...channelOptionsFor(parentSite), ...extra });
  }

  async #session(signal: AbortSignal): Promise<void> {
    const { parentSite, address, log } = this.#options;
    const client = this.#nextClient ?? this.#newClient();
    this.#nextClient = undefined;
    let transfers: ParentServiceClient | undefined;
    const onAbort = () => client.close();
    signal.addEventListener("abort", onAbort, { once: true });
    const session = new AbortController();
    const stop = () => session.abort();
    signal.addEventListener("abort", stop, { once: true });
    this.#endCurrent = () => {
      stop();
      client.close();
    };
    try {
      const hello = await this.#hello(client, signal);
      if (await this.#refuseIfRolledBack(hello)) return;
      this.#backoff.reset();
      this.#state.lastError = "";
      this.#setState("connected");
      log.info("parent link up", { parent: parentSite, address });
      // Policies first: a revocation made while this node was away must be in force
      // before anything else catches up.
      this.#policies = followPolicies(client, { ...this.#options, signal: session.signal, log });
      await this.#policies.caughtUp;
      await this.#options.acks.save(hello.checkpoints);
      await this.#options.audit.saveAnchors(hello.audit_heads);
      this.#feeds = {
        inventory: new InventoryFeed(this.#options.replica, this.#options.acks, hello.checkpoints),
        audit: new AuditFeed(this.#options.audit, hello.audit_heads, log),
      };
      await this.#options.audit.append({ actor: "node", action: "link.connect", target: parentSite, result: "ok", details: { address } });
      const options = {
        window: this.#options.window ?? 4,
        signal: session.signal,
        onAcknowledged: () => (this.#state.lastSyncMs = Date.now()),
      };
      // Any stream failing ends the session; the others are stopped with it.
      const streams = [
        this.#policies.done,
        streamFeed(this.#feeds.inventory, client, { ...options, batchSize: this.#options.batchSize ?? 500 }),
        streamFeed(this.#feeds.audit, client, { ...options, batchSize: this.#options.auditBatchSize ?? DEFAULT_AUDIT_BATCH }),
      ];
      const { fragments, cap } = this.#options;
      if (fragments && cap) {
        streams.push(followCommands(client, { fragments, cap, audit: this.#options.audit, parentSite, log, signal: session.signal }));
        // Fragments go on a connection of their own: their bytes never queue ahead of the
        // sync streams' in one TCP send buffer (R-7.1).
        transfers = this.#newClient({ "grpc.use_local_subchannel_pool": 1 });
        fragments.attach(transfers);
      }
      await Promise.race(streams).finally(stop);
      await Promise.all(streams);
    } finally {
      this.#options.fragments?.attach(undefined);
      transfers?.close();
      this.#endCurrent = undefined;
      stop();
      await this.#policies?.done.catch(() => undefined);
      this.#policies = undefined;
      signal.removeEventListener("abort", onAbort);
      signal.removeEventListener("abort", stop);
      client.close();
    }
  }

  /**
   * Says hello once the parent is reachable, within the connect timeout. The call itself
   * waits for the channel (not `waitForReady` on the client, whose timer outlives a closed
   * channel and would hold the process after a stop), and `signal` cancels it.
   */
  async #hello(client: ParentServiceClient, signal: AbortSignal): Promise<HelloResponse> {
    const { parentSite, address, epoch } = this.#options;
    const pending = await this.#options.acks.pending();
    const response = await new Promise<HelloResponse>((resolve, reject) => {
      const options = { deadline: Date.now() + CONNECT_TIMEOUT_MS, waitForReady: true };
      const call = client.hello({ epoch, pending }, new Metadata(), options, (error, reply) => {
        signal.removeEventListener("abort", cancel);
        if (reply && !error) return resolve(reply);
        const failure = fromServiceError(error);
        if (failure.code !== "unavailable" && failure.code !== "deadline_exceeded") return reject(failure);
        reject(new VmtreeError(
          "unavailable",
          `cannot reach parent ${parentSite} at ${address}: ${failure.rawMessage.replace(/\s*Resolution note:\s*$/, "")}; check that it runs, that the address is right and that the node there is ${parentSite}`,
          { cause: failure },
        ));
      });
      const cancel = () => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
    });
    if (response.parent_site !== parentSite) throw new VmtreeError("permission_denied", `expected parent ${parentSite}, reached ${response.parent_site}`);
    return response;
  }

  /**
   * Compares what the parent holds of this node's own origin in its own epoch with what
   * the store has produced. When the parent is ahead, the store was rolled back (restored
   * from an older backup): anything sent now would be taken as old or as a fork, so the
   * session ends before a batch is sent, with the reason in `lastError`, logged and audited
   * once. The loop keeps retrying with its backoff (not reset), in case it is resolved.
   */
  async #refuseIfRolledBack(hello: HelloResponse): Promise<boolean> {
    const { site, epoch, parentSite, log } = this.#options;
    const problem = rollbackProblem({
      site, epoch, parentSite, checkpoints: hello.checkpoints, auditHeads: hello.audit_heads, own: await this.#ownProgress(hello),
    });
    if (!problem) {
      this.#refused = false;
      return false;
    }
    this.#state.lastError = problem;
    if (!this.#refused) {
      this.#refused = true;
      log.error("parent link refused: this store is behind what the parent holds of it", { parent: parentSite, reason: problem });
      await this.#options.audit
        .append({ actor: "node", action: "link.refused", target: parentSite, result: "refused", details: { reason: problem } })
        .catch(() => undefined);
    }
    return true;
  }

  /** What the store has produced of this node's own origin in its own epoch. */
  async #ownProgress(hello: HelloResponse): Promise<OwnProgress> {
    const { site, epoch, replica, audit } = this.#options;
    const inventory = (await replica.origins()).find((c) => c.origin === site && c.epoch === epoch);
    const head = (await audit.heads()).find((h) => h.origin === site && h.epoch === epoch);
    const progress: OwnProgress = { inventorySeq: inventory?.seq ?? 0, auditSeq: head?.seq ?? 0 };
    const parentHead = parentOwnAuditHead(site, epoch, hello.audit_heads);
    if (parentHead && parentHead.seq > progress.auditSeq) {
      // Entries may lie past the head record (see AuditLog): the last one stored counts too.
      const [stored] = await audit.storedAfter(site, epoch, parentHead.seq - 1, 1);
      if (stored && stored.origin === site && stored.epoch === epoch) progress.auditSeq = Math.max(progress.auditSeq, stored.seq);
    }
    return progress;
  }

  /**
   * Folds the ended session's counts into the totals and marks the link down, unless the
   * session was handed over to a new connection that is already up.
   */
  #endSession({ handedOver }: { handedOver: boolean }): void {
    const feeds = this.#feeds;
    this.#feeds = undefined;
    if (feeds) {
      this.#saveHistory();
      this.#state.sent += feeds.inventory.sent;
      this.#state.auditSent += feeds.audit.sent;
      this.#state.auditQuarantinedByParent = feeds.audit.quarantinedByParent;
      void this.#options.audit
        .append({
          actor: "node",
          action: "link.disconnect",
          target: this.#options.parentSite,
          result: "ok",
          details: { reason: handedOver ? "handed over to renewed credentials" : this.#state.lastError },
        })
        .catch(() => undefined);
    }
    if (!handedOver) this.#setState("disconnected");
  }

  #setState(state: UplinkState["state"]): void {
    if (this.#state.state === state) return;
    this.#state.state = state;
    this.#state.sinceMs = Date.now();
    this.#saveHistory();
  }

  /** Keeps the link's times for `status` while the node is stopped; losing one write is harmless. */
  #saveHistory(): void {
    const history: UplinkHistory = { sinceMs: this.#state.sinceMs, lastSyncMs: this.#state.lastSyncMs };
    this.#options.store.section<UplinkHistory>(HISTORY_SECTION).put("parent", history).catch(() => undefined);
  }
}

/** Resolves once `client`'s channel is connected, by `deadline`. */
function ready(client: ParentServiceClient, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => client.waitForReady(deadline, (error) => (error ? reject(error) : resolve())));
}
