import type { Http2Server, ServerHttp2Session } from "node:http2";
import type { TLSSocket } from "node:tls";
import type { Server, ServerCredentials } from "@grpc/grpc-js";
import { VmtreeError } from "../errors.ts";
import type { Logger } from "../util/log.ts";
import { peerIdentity } from "./peer-identity.ts";

/** Receive window for each stream and for the whole connection, on the server side. */
export const SERVER_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

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

/**
 * Connections of one peer site that get the raised receive window at once: its link, its
 * fragment transfers, and one more for a renewal's handover or a reconnect that overlaps the
 * old connection's end. Each raised connection may hold a full window of unread data here.
 */
export const RAISED_CONNECTIONS_PER_SITE = 3;

/**
 * Raises the HTTP/2 receive windows of the connections the server accepts from now on.
 * grpc-js keeps HTTP/2's default 64 KiB on the server side and offers no option for it
 * (its flow-control option is read by clients only), which bounds every upload from a
 * child to 64 KiB per round trip: 2 Mbit/s on a 250 ms link. The http2 servers are not
 * public, so this reaches into grpc-js; if that field ever moves, it logs and the link
 * keeps working at the default window.
 *
 * Only connections with a verified certificate are raised, at most
 * {@link RAISED_CONNECTIONS_PER_SITE} per site; a site's further connections keep the
 * default until one of its raised ones closes. Otherwise a child opening a connection per
 * call held 16 MiB of unread data here on each (600 MB measured with 64).
 */
export function raiseReceiveWindow(server: Server, log: Logger): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) {
    log.warn("cannot raise the HTTP/2 receive window: grpc-js internals changed; uploads may be slow on long links");
    return;
  }
  const sites = new Map<string, { raised: Set<ServerHttp2Session>; waiting: ServerHttp2Session[] }>();
  const raise = (session: ServerHttp2Session) => {
    session.settings({ initialWindowSize: SERVER_RECEIVE_WINDOW_BYTES });
    session.setLocalWindowSize(SERVER_RECEIVE_WINDOW_BYTES);
  };
  for (const http2Server of http2Servers.keys()) {
    http2Server.on("session", (session: ServerHttp2Session) => {
      const site = verifiedSite(session);
      if (site === undefined) return;
      const own = sites.get(site) ?? { raised: new Set<ServerHttp2Session>(), waiting: [] };
      sites.set(site, own);
      if (own.raised.size < RAISED_CONNECTIONS_PER_SITE) {
        own.raised.add(session);
        raise(session);
      } else {
        own.waiting.push(session);
      }
      session.once("close", () => {
        if (own.raised.delete(session)) {
          // Sessions closing together: one still waiting may be closing already.
          const next = own.waiting.find((waiting) => !waiting.closed && !waiting.destroyed);
          if (next) {
            own.waiting.splice(own.waiting.indexOf(next), 1);
            own.raised.add(next);
            raise(next);
          }
        } else {
          const at = own.waiting.indexOf(session);
          if (at >= 0) own.waiting.splice(at, 1);
        }
        if (own.raised.size === 0 && own.waiting.length === 0) sites.delete(site);
      });
    });
  }
}

/** The site named by a connection's verified client certificate, if it presented one. */
function verifiedSite(session: ServerHttp2Session): string | undefined {
  const socket = session.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  try {
    return peerIdentity({ sslPeerCertificate: socket.getPeerCertificate() }).site;
  } catch {
    return undefined;
  }
}

/** How long a connection may take to complete its TLS handshake before it is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Drops connections that do not complete their TLS handshake within `ms` (Node's default is
 * 120 s): a peer opening connections and never finishing them would otherwise hold sockets
 * and memory. grpc-js has no option for it; its http2 servers carry Node's own setting under
 * an internal symbol, read for every new connection. Logs and keeps the default if that moved.
 */
export function limitHandshakes(server: Server, ms: number, log: Logger): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  let set = false;
  for (const http2Server of http2Servers?.keys() ?? []) {
    const key = Object.getOwnPropertySymbols(http2Server).find((symbol) => symbol.description === "handshake-timeout");
    if (key === undefined) continue;
    (http2Server as unknown as Record<symbol, number>)[key] = ms;
    set = true;
  }
  if (!set) log.warn("cannot shorten the TLS handshake timeout: Node or grpc-js internals changed; it stays at Node's default");
}
