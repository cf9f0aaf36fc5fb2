import { existsSync } from "node:fs";
import { credentials } from "@grpc/grpc-js";
import { AdminServiceClient } from "../gen/vmtree/v1/admin.ts";
import type {
  CreateInviteResponse,
  GetStatusResponse,
  ImportCamerasResponse,
  ListCamerasResponse,
} from "../gen/vmtree/v1/admin.ts";
import { unaryCall } from "../link/unary-call.ts";
import { DataDir } from "./data-dir.ts";
import { VmtreeNode } from "./node.ts";

/** The operations the CLI performs on a node, running or not. */
export interface NodeAdmin {
  status(): Promise<GetStatusResponse>;
  createInvite(site: string, ttlSeconds: number): Promise<CreateInviteResponse>;
  importCameras(fileName: string, content: Uint8Array): Promise<ImportCamerasResponse>;
  listCameras(site: string): Promise<ListCamerasResponse>;
  close(): Promise<void>;
}

const ADMIN_TIMEOUT_MS = 60_000;

/**
 * Reaches the node of `dataDir`: through its admin socket when it is running,
 * otherwise by opening its store directly, so that a site keeps working with its
 * service stopped. A running node holds the store's lock, so the two never mix.
 */
export async function connectAdmin(dataDir: string): Promise<NodeAdmin> {
  const dir = new DataDir(dataDir);
  await dir.readConfig();
  if (existsSync(dir.adminSocket)) {
    const client = new AdminServiceClient(`unix:${dir.adminSocket}`, credentials.createInsecure(), {
      "grpc.max_send_message_length": 80 * 1024 * 1024,
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
    });
    if (await ready(client)) return socketAdmin(client);
    client.close();
  }
  return localAdmin(await VmtreeNode.open(dataDir));
}

function ready(client: AdminServiceClient): Promise<boolean> {
  return new Promise((resolve) => client.waitForReady(Date.now() + 2_000, (error) => resolve(!error)));
}

function socketAdmin(client: AdminServiceClient): NodeAdmin {
  return {
    status: () => unaryCall(client.getStatus.bind(client), {}, ADMIN_TIMEOUT_MS),
    createInvite: (site, ttlSeconds) => unaryCall(client.createInvite.bind(client), { site, ttl_seconds: ttlSeconds }, ADMIN_TIMEOUT_MS),
    importCameras: (fileName, content) =>
      unaryCall(client.importCameras.bind(client), { file_name: fileName, content: Buffer.from(content) }, ADMIN_TIMEOUT_MS),
    listCameras: (site) => unaryCall(client.listCameras.bind(client), { site }, ADMIN_TIMEOUT_MS),
    close: async () => client.close(),
  };
}

function localAdmin(node: VmtreeNode): NodeAdmin {
  return {
    status: () => node.status(),
    createInvite: async (site, ttlSeconds) => {
      const { token, expiresMs } = await node.createInvite(site, ttlSeconds * 1000);
      return { token, expires_ms: expiresMs };
    },
    importCameras: (fileName, content) => node.importCameras(fileName, content),
    listCameras: async (site) => ({ cameras: await node.listCameras(site || undefined) }),
    close: () => node.close(),
  };
}
