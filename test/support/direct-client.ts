import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ParentServiceClient } from "../../src/gen/vmtree/v1/link.ts";
import { channelOptionsFor, clientCredentials } from "../../src/link/tls.ts";

/**
 * Calls a parent's `Hello` directly with the certificate of the node in `certDir`
 * (or none), trusting the root CA in `trustDir`. Resolves with the gRPC status code.
 */
export async function helloStatus(options: { address: string; parentSite: string; trustDir: string; certDir?: string }): Promise<status> {
  const client = await parentClient(options);
  try {
    return await new Promise<status>((resolve) => {
      client.hello({ epoch: 1, pending: 0 }, new Metadata(), { deadline: Date.now() + 10_000 }, (error: ServiceError | null) =>
        resolve(error ? error.code : status.OK),
      );
    });
  } finally {
    client.close();
  }
}

/**
 * A client of the parent at `address` presenting the certificate of the node in `certDir`
 * (or none), trusting the root CA in `trustDir`: a child's identity without its node running.
 * With `ownConnection`, the client does not share its connection with other clients.
 */
export async function parentClient(options: { address: string; parentSite: string; trustDir: string; certDir?: string; ownConnection?: boolean }): Promise<ParentServiceClient> {
  const rootCa = await readFile(join(options.trustDir, "tls", "root-ca.pem"), "utf8");
  const creds = options.certDir
    ? clientCredentials(
        {
          rootCa,
          nodeCertChain: await readFile(join(options.certDir, "tls", "node.pem"), "utf8"),
          nodeKey: await readFile(join(options.certDir, "tls", "node.key"), "utf8"),
        },
        options.parentSite,
      )
    : clientCredentials({ rootCa }, options.parentSite);
  // grpc-js shares one connection among clients of the same target and options unless told not to.
  const own = options.ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {};
  return new ParentServiceClient(options.address, creds ?? credentials.createInsecure(), { ...channelOptionsFor(options.parentSite), ...own });
}
