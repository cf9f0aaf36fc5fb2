import { Server, type ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";

/** Binds a gRPC server on `address` and resolves with the port actually bound. */
export function bindServer(server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
      if (error) reject(new VmtreeError("unavailable", `cannot listen on ${address}: ${error.message}`, { cause: error }));
      else resolve(port);
    });
  });
}

/**
 * Shuts a server down: stops accepting, lets running calls finish for `graceMs`,
 * then cancels what is left. Long-lived streams (a child's sync stream) would
 * otherwise hold a graceful shutdown open for ever.
 */
export function shutdownServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A server with vmtree's options. */
export function createServer(options: ChannelOptions): Server {
  return new Server(options);
}
