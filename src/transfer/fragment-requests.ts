import { EventEmitter } from "node:events";
import { VmtreeError } from "../errors.ts";
import type { FragmentFailure, FragmentRequest, FragmentRequestOutcome } from "../gen/vmtree/v1/fragment.ts";
import { checkSiteId, isInSubtree } from "../pki/site-id.ts";
import type { NodeStore } from "../store/node-store.ts";
import { checkFragment, isTime } from "./fragment-meta.ts";

const REQUEST_ID = /^[a-z0-9.-]{1,140}\/[0-9]{1,15}$/;

/** True for a request id as its requester makes them: `<site>/<number>`. */
export function isRequestId(text: string): boolean {
  return REQUEST_ID.test(text);
}
const CAMERA_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_REASON_CHARS = 1_000;
export const MAX_REQUESTED_BY_CHARS = 200;
const MAX_OUTCOME_FRAGMENTS = 10_000;
const PRINTABLE = /^[^\u0000-\u001f\u007f]*$/;

export type RequestState = "pending" | "found" | "not_found" | "delivered" | "failed";

/** A request this node made or passed on. */
export interface RequestRecord {
  request: FragmentRequest;
  /** The child it was routed to; empty when this node's own archive answers it. */
  via: string;
  /** It came from the parent: its outcome and fragments go back up. */
  fromParent: boolean;
  state: RequestState;
  outcome?: FragmentRequestOutcome;
  /** Fragments of the outcome held here. */
  delivered: string[];
  /** Fragments of the outcome that could not be sent up, for good; absent in records from before. */
  failures?: FragmentFailure[];
}

/**
 * The fragment requests a node made or passed on, kept at least 24 months with
 * their outcomes. Emits `routed` (a record to send to its `via` child), `answered`
 * (a record whose outcome is known) and `failed` (a fragment of it that could not be sent).
 */
export class FragmentRequests extends EventEmitter<{ routed: [RequestRecord]; answered: [RequestRecord]; failed: [RequestRecord, FragmentFailure] }> {
  readonly #records;
  readonly #counter;

  constructor(store: NodeStore) {
    super();
    this.#records = store.section<RequestRecord>("fragment-requests");
    this.#counter = store.section<number>("fragment-request-counter");
  }

  /** A new request id of this node: `<site>/<n>`. */
  async nextId(site: string): Promise<string> {
    const next = ((await this.#counter.get("last")) ?? 0) + 1;
    await this.#counter.put("last", next);
    return `${site}/${next}`;
  }

  get(id: string): Promise<RequestRecord | undefined> {
    return this.#records.get(id);
  }

  async list(): Promise<RequestRecord[]> {
    return (await this.#records.values().all()).sort((a, b) => a.request.requested_ms - b.request.requested_ms);
  }

  /** Requests routed to `child` that have no outcome yet: sent again on every new stream. */
  async pendingFor(child: string): Promise<RequestRecord[]> {
    return (await this.list()).filter((r) => r.via === child && r.state === "pending");
  }

  /** Records a request (idempotent: one already known is returned as it is). */
  async record(record: RequestRecord): Promise<RequestRecord> {
    const known = await this.#records.get(record.request.id);
    if (known) return known;
    await this.#records.put(record.request.id, record);
    if (record.via) this.emit("routed", record);
    return record;
  }

  /** Records the outcome of a request; the first one counts. */
  async answer(outcome: FragmentRequestOutcome, delivered: string[] = []): Promise<RequestRecord | undefined> {
    const record = await this.#records.get(outcome.request_id);
    if (!record || record.outcome) return record;
    record.outcome = outcome;
    record.delivered = [...new Set([...record.delivered, ...delivered])];
    record.state = stateOf(record);
    await this.#records.put(record.request.id, record);
    this.emit("answered", record);
    return record;
  }

  /** Notes that a fragment of a request's outcome is now held here. */
  async delivered(requestId: string, fragmentId: string): Promise<RequestRecord | undefined> {
    const record = await this.#records.get(requestId);
    if (!record) return undefined;
    if (!record.delivered.includes(fragmentId)) record.delivered.push(fragmentId);
    record.state = stateOf(record);
    await this.#records.put(requestId, record);
    return record;
  }

  /**
   * Notes that a fragment of a request's "found" outcome could not be sent up, for good; a
   * fragment unknown to the outcome, or failed before, changes nothing.
   */
  async fail(failure: FragmentFailure): Promise<RequestRecord | undefined> {
    const record = await this.#records.get(failure.request_id);
    if (!record?.outcome?.fragments.some((f) => f.id === failure.fragment_id)) return record;
    const failures = record.failures ?? [];
    if (failures.some((f) => f.fragment_id === failure.fragment_id)) return record;
    record.failures = [...failures, failure];
    record.state = stateOf(record);
    await this.#records.put(record.request.id, record);
    this.emit("failed", record, failure);
    return record;
  }

  /** Deletes requests made before `beforeMs`; returns them. */
  async expire(beforeMs: number): Promise<RequestRecord[]> {
    const old = (await this.list()).filter((r) => r.request.requested_ms < beforeMs);
    for (const record of old) await this.#records.del(record.request.id);
    return old;
  }
}

function stateOf(record: RequestRecord): RequestState {
  if (!record.outcome) return "pending";
  if (record.outcome.state === "not_found") return "not_found";
  const failed = new Set((record.failures ?? []).map((f) => f.fragment_id));
  const wanted = record.outcome.fragments.map((f) => f.id);
  if (!wanted.every((id) => record.delivered.includes(id) || failed.has(id))) return "found";
  return failed.size > 0 ? "failed" : "delivered";
}

/** Checks a request received from a parent or a caller. */
export function checkRequest(request: FragmentRequest | undefined, where: string): FragmentRequest {
  if (!request) throw new VmtreeError("invalid_argument", `${where}: no request`);
  const bad = (field: string, value: unknown, expected: string) => {
    throw new VmtreeError("invalid_argument", `${where}: request field ${field} ${JSON.stringify(String(value).slice(0, 140))} is not ${expected}`);
  };
  if (!REQUEST_ID.test(request.id)) bad("id", request.id, "a request id (site/number)");
  if (!checkSiteId(request.site).ok) bad("site", request.site, "a site id");
  if (!CAMERA_ID.test(request.camera_id)) bad("camera_id", request.camera_id, "a camera id");
  if (!isTime(request.from_ms)) bad("from_ms", request.from_ms, "a time");
  if (!isTime(request.to_ms) || request.to_ms < request.from_ms) bad("to_ms", request.to_ms, "a time at or after from_ms");
  if (request.reason.trim() === "" || request.reason.length > MAX_REASON_CHARS || !PRINTABLE.test(request.reason)) bad("reason", request.reason, `a reason of 1 to ${MAX_REASON_CHARS} printable characters (R-28 asks for a reasoned request)`);
  if (request.requested_by.trim() === "" || request.requested_by.length > MAX_REQUESTED_BY_CHARS || !PRINTABLE.test(request.requested_by)) bad("requested_by", request.requested_by, `who asks, 1 to ${MAX_REQUESTED_BY_CHARS} printable characters`);
  if (!checkSiteId(request.requester).ok || !request.id.startsWith(`${request.requester}/`)) bad("requester", request.requester, "the site whose id the request carries");
  if (!isInSubtree(request.site, request.requester) || request.site === request.requester) bad("site", request.site, `a site below ${request.requester}`);
  if (!isTime(request.requested_ms)) bad("requested_ms", request.requested_ms, "a time");
  return request;
}

/** Checks a failure received from a child for a fragment of a request routed to it. */
export function checkFailure(failure: FragmentFailure, record: RequestRecord | undefined, child: string): FragmentFailure {
  const where = `failure of request ${JSON.stringify(failure.request_id.slice(0, 160))} from ${child}`;
  if (!record || record.via !== child) throw new VmtreeError("permission_denied", `${where}: no such request was routed to ${child}`);
  if (!record.outcome?.fragments.some((f) => f.id === failure.fragment_id)) throw new VmtreeError("invalid_argument", `${where}: fragment ${JSON.stringify(failure.fragment_id.slice(0, 80))} is not of its outcome`);
  if (failure.message.trim() === "" || failure.message.length > MAX_REASON_CHARS || !PRINTABLE.test(failure.message)) throw new VmtreeError("invalid_argument", `${where}: the message is not 1 to ${MAX_REASON_CHARS} printable characters`);
  if (!isTime(failure.failed_ms)) throw new VmtreeError("invalid_argument", `${where}: failed_ms ${failure.failed_ms} is not a time`);
  return failure;
}

/** Checks an outcome received from a child for a request routed to it. */
export function checkOutcome(outcome: FragmentRequestOutcome, record: RequestRecord | undefined, child: string): FragmentRequestOutcome {
  const where = `outcome of request ${JSON.stringify(outcome.request_id.slice(0, 160))} from ${child}`;
  if (!record || record.via !== child) throw new VmtreeError("permission_denied", `${where}: no such request was routed to ${child}`);
  if (outcome.state !== "found" && outcome.state !== "not_found") throw new VmtreeError("invalid_argument", `${where}: state ${JSON.stringify(outcome.state.slice(0, 40))} is not found or not_found`);
  if (outcome.fragments.length > MAX_OUTCOME_FRAGMENTS) throw new VmtreeError("invalid_argument", `${where}: more than ${MAX_OUTCOME_FRAGMENTS} fragments`);
  if (outcome.message.length > MAX_REASON_CHARS || !PRINTABLE.test(outcome.message)) throw new VmtreeError("invalid_argument", `${where}: the message is not up to ${MAX_REASON_CHARS} printable characters`);
  if (!isTime(outcome.answered_ms)) throw new VmtreeError("invalid_argument", `${where}: answered_ms ${outcome.answered_ms} is not a time`);
  for (const fragment of outcome.fragments) {
    checkFragment(fragment, where);
    if (fragment.site !== record.request.site || fragment.camera_id !== record.request.camera_id) {
      throw new VmtreeError("invalid_argument", `${where}: fragment ${fragment.id} is of ${fragment.site}/${fragment.camera_id}, not what was asked`);
    }
  }
  return outcome;
}
