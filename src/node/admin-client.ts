import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { credentials, Metadata } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import { AdminServiceClient } from "../gen/vmtree/v1/admin.ts";
import { unaryCall } from "../link/unary-call.ts";
import { ADMIN_METHODS, createAdminHandlers, type AdminHandlers } from "./admin-handlers.ts";
import { ACTOR_METADATA_KEY } from "./admin-service.ts";
import { DataDir } from "./data-dir.ts";
import { VmtreeNode } from "./node.ts";

/** The admin API of a node, running or not, and a way to let go of it. */
export interface NodeAdmin extends AdminHandlers {
  close(): Promise<void>;
}

const ADMIN_TIMEOUT_MS = 60_000;

/** Who runs this command: the local OS user, as the audit log records it. */
export function localActor(): string {
  return `user:${userInfo().username}`;
}

/**
 * Reaches the node of `dataDir`: through its admin socket when it is running,
 * otherwise by opening its store directly, so that a site keeps working with its
 * service stopped. A running node holds the store's lock, so the two never mix.
 */
export async function connectAdmin(dataDir: string, actor = localActor(), options: { runningOnly?: boolean } = {}): Promise<NodeAdmin> {
  const dir = new DataDir(dataDir);
  await dir.readConfig();
  if (existsSync(dir.adminSocket)) {
    const client = new AdminServiceClient(`unix:${dir.adminSocket}`, credentials.createInsecure(), {
      "grpc.max_send_message_length": 80 * 1024 * 1024,
      "grpc.max_receive_message_length": 1024 * 1024 * 1024,
    });
    if (await ready(client)) return socketAdmin(client, actor);
    client.close();
  }
  // A command that keeps going (a watch) would hold the store's lock and keep the node from starting.
  if (options.runningOnly) throw new VmtreeError("unavailable", `the node of ${dataDir} is not running (no answer on its admin socket); start it with vmtree serve`);
  // A one-off command reports through its own output; only warnings belong on stderr.
  const node = await VmtreeNode.open(dataDir, { logLevel: "warn" });
  return { ...createAdminHandlers(node.operations, actor), close: () => node.close() };
}

function ready(client: AdminServiceClient): Promise<boolean> {
  return new Promise((resolve) => client.waitForReady(Date.now() + 2_000, (error) => resolve(!error)));
}

function socketAdmin(client: AdminServiceClient, actor: string): NodeAdmin {
  const metadata = new Metadata();
  metadata.set(ACTOR_METADATA_KEY, actor);
  const admin: Partial<Record<string, unknown>> = { close: async () => client.close() };
  for (const method of ADMIN_METHODS) {
    const call = (client[method] as unknown as Parameters<typeof unaryCall<unknown, unknown>>[0]).bind(client);
    admin[method] = (request: unknown) => unaryCall(call, request, ADMIN_TIMEOUT_MS, metadata);
  }
  return admin as unknown as NodeAdmin;
}
