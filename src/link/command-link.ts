import type { ClientDuplexStream, ServerDuplexStream } from "@grpc/grpc-js";
import type { AuditLog } from "../audit/audit-log.ts";
import { VmtreeError } from "../errors.ts";
import type { FragmentFailure, FragmentRequestOutcome, LinkLimit } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient, SyncCommandsRequest, SyncCommandsResponse } from "../gen/vmtree/v1/link.ts";
import type { RequestRecord } from "../transfer/fragment-requests.ts";
import type { Fragments } from "../transfer/fragments.ts";
import type { LinkCap } from "../transfer/link-cap.ts";
import type { LinkLimits } from "../transfer/link-limits.ts";
import { waitForDrain } from "../util/drain.ts";
import type { Logger } from "../util/log.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { eachMessage } from "./each-message.ts";

/** What the parent's side of a child's command stream uses. */
export interface CommandSource {
  fragments: Fragments;
  limits: LinkLimits;
}

/**
 * The parent's side of SyncCommands: sends the child its link's cap and every request
 * routed to it that has no outcome yet, then each new one as it comes; records the
 * outcomes the child sends up. Resolves when the child ends the stream.
 */
export async function serveCommands(call: ServerDuplexStream<SyncCommandsRequest, SyncCommandsResponse>, child: string, { fragments, limits }: CommandSource): Promise<void> {
  const writes = new SerialQueue();
  const send = (message: SyncCommandsResponse) =>
    writes.run(async () => {
      if (!call.write(message)) await waitForDrain(call);
    });
  const onRouted = (record: RequestRecord) => void (record.via === child && send({ command: { $case: "fragment_request", value: record.request } }).catch(() => undefined));
  const onLimit = (site: string, limit: LinkLimit) => void (site === child && send({ command: { $case: "link_limit", value: limit } }).catch(() => undefined));
  fragments.requests.on("routed", onRouted);
  limits.on("change", onLimit);
  try {
    await send({ command: { $case: "link_limit", value: await limits.get(child) } });
    for (const record of await fragments.requests.pendingFor(child)) await send({ command: { $case: "fragment_request", value: record.request } });
    await eachMessage<SyncCommandsRequest>(call, async (message) => {
      const reply = message.reply;
      if (reply?.$case === "outcome") await fragments.fromChild(child, reply.value);
      else if (reply?.$case === "failure") await fragments.failedAtChild(child, reply.value);
      else throw new VmtreeError("invalid_argument", "a command reply carries an outcome or a failure");
    });
    call.end();
  } finally {
    fragments.requests.off("routed", onRouted);
    limits.off("change", onLimit);
  }
}

/** Options of {@link followCommands}. */
export interface FollowCommandsOptions {
  fragments: Fragments;
  cap: LinkCap;
  audit: AuditLog;
  parentSite: string;
  log: Logger;
  signal: AbortSignal;
}

/**
 * The child's side of SyncCommands: applies the cap the parent sets, answers or routes on
 * the requests it sends, and sends up each outcome known for a request from the parent
 * (again, when the parent sends a request again). Resolves or rejects when the stream ends.
 */
export async function followCommands(client: ParentServiceClient, options: FollowCommandsOptions): Promise<void> {
  const { fragments, cap, log, signal } = options;
  const call: ClientDuplexStream<SyncCommandsRequest, SyncCommandsResponse> = client.syncCommands();
  const onAbort = () => call.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  const writes = new SerialQueue();
  const sendOutcome = (outcome: FragmentRequestOutcome) =>
    writes.run(async () => {
      if (!call.write({ reply: { $case: "outcome", value: outcome } })) await waitForDrain(call);
    });
  const onAnswered = (record: RequestRecord) => void (record.fromParent && record.outcome && sendOutcome(record.outcome).catch(() => undefined));
  const sendFailure = (failure: FragmentFailure) =>
    writes.run(async () => {
      if (!call.write({ reply: { $case: "failure", value: failure } })) await waitForDrain(call);
    });
  const onFailed = (record: RequestRecord, failure: FragmentFailure) => void (record.fromParent && sendFailure(failure).catch(() => undefined));
  fragments.requests.on("answered", onAnswered);
  fragments.requests.on("failed", onFailed);
  try {
    // Failures noted while the link was down; the parent ignores those it knows.
    for (const record of await fragments.requests.list()) {
      if (record.fromParent) for (const failure of record.failures ?? []) await sendFailure(failure);
    }
    await eachMessage<SyncCommandsResponse>(call, async (message) => {
      const command = message.command;
      if (command?.$case === "link_limit") {
        await cap.setByParent(command.value.bits_per_second, command.value.set_ms);
      } else if (command?.$case === "fragment_request") {
        try {
          // A new outcome goes up through `answered`; one known before is sent again here.
          const known = await fragments.fromParent(command.value);
          if (known) await sendOutcome(known);
        } catch (error) {
          const reason = VmtreeError.from(error);
          log.warn("fragment request from the parent refused", { request: command.value.id.slice(0, 160), reason: reason.message });
          await options.audit.append({ actor: `site:${options.parentSite}`, action: "fragment.request", target: command.value.id.slice(0, 160), result: "refused", details: { reason: reason.rawMessage } }).catch(() => undefined);
        }
      }
    });
    throw new VmtreeError("unavailable", "the parent ended the command stream");
  } finally {
    fragments.requests.off("answered", onAnswered);
    fragments.requests.off("failed", onFailed);
    signal.removeEventListener("abort", onAbort);
    call.cancel();
  }
}
