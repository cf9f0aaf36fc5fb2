import net from "node:net";
import { performance } from "node:perf_hooks";
import { VmtreeError } from "../../src/errors.ts";

/** Where a {@link TcpProxy} forwards the connections it accepts. */
export interface ProxyTarget {
  host: string;
  port: number;
}

/** Options of {@link startTcpProxy}. */
export interface TcpProxyOptions {
  target: ProxyTarget;
  /** Delivers every chunk this many milliseconds after it was read, in each direction. Default 0. */
  delayMs?: number;
}

/**
 * A TCP proxy on 127.0.0.1 that a test puts between two vmtree nodes to cut, pause, slow
 * down and measure the link between them.
 */
export interface TcpProxy {
  /** The port the proxy listens on. */
  readonly port: number;
  /** `127.0.0.1:PORT`, ready to be used as a gRPC target. */
  readonly address: string;
  /** Bytes written to the target so far, over all connections; bytes still delayed are not included. */
  readonly bytesUpstream: number;
  /** Bytes written to clients so far, over all connections; bytes still delayed are not included. */
  readonly bytesDownstream: number;
  /** Connections accepted so far; does not include those refused while paused. */
  readonly connections: number;
  /**
   * The most bytes one direction of one connection ever held at once: chunks waiting out
   * their delay plus bytes the destination socket had not yet handed to the kernel.
   */
  readonly maxBufferedBytes: number;
  /** Destroys every current connection on both sides; new connections are still accepted. */
  cut(): void;
  /** Takes the link down: destroys every current connection and refuses new ones until `resume()`. */
  pause(): void;
  /**
   * Keeps every connection open but silently drops every byte in both directions, as a
   * dead peer or a broken route would: only timeouts and keepalives can notice it.
   */
  blackhole(): void;
  /** Brings the link back up after `pause()` or `blackhole()` (blackholed connections are cut). */
  resume(): void;
  /** Changes where new connections go; current connections keep their target. */
  setTarget(target: ProxyTarget): void;
  /**
   * Stops listening and destroys every connection. Resolves once the listener is closed;
   * a second call returns the same promise.
   */
  close(): Promise<void>;
}

/**
 * Bytes one direction may hold in its delay queue before the source is paused. Without this
 * limit a fast sender would fill `delayMs` worth of loopback bandwidth, hundreds of MiB.
 */
const QUEUE_HIGH_WATER_BYTES = 1024 * 1024;

/** What a {@link Forwarder} reports to its proxy. */
interface ForwardStats {
  delivered(bytes: number): void;
  buffered(bytes: number): void;
  /** True while the proxy drops everything it reads. */
  dropping(): boolean;
}

interface DelayedChunk {
  chunk: Buffer;
  dueAt: number;
}

/**
 * Copies one direction of a connection, optionally delayed, stopping the source whenever
 * the delay queue is full or the destination asks to wait for `'drain'`.
 */
class Forwarder {
  readonly #source: net.Socket;
  readonly #destination: net.Socket;
  readonly #delayMs: number;
  readonly #stats: ForwardStats;
  readonly #queue: DelayedChunk[] = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #waitingForDrain = false;
  #sourceEnded = false;
  #destinationEnded = false;
  #stopped = false;

  constructor(source: net.Socket, destination: net.Socket, delayMs: number, stats: ForwardStats) {
    this.#source = source;
    this.#destination = destination;
    this.#delayMs = delayMs;
    this.#stats = stats;
    source.on("data", (chunk: Buffer) => this.#onData(chunk));
    source.on("end", () => this.#onEnd());
    destination.on("drain", () => this.#onDrain());
  }

  /** Drops whatever is still queued; called once either socket of the connection is gone. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
  }

  #onData(chunk: Buffer): void {
    if (this.#stopped || this.#stats.dropping()) return;
    if (this.#delayMs === 0) {
      this.#write(chunk);
    } else {
      this.#queue.push({ chunk, dueAt: performance.now() + this.#delayMs });
      this.#queuedBytes += chunk.length;
      this.#schedule();
    }
    this.#report();
    this.#throttle();
  }

  #onEnd(): void {
    this.#sourceEnded = true;
    this.#endIfFlushed();
  }

  #onDrain(): void {
    this.#waitingForDrain = false;
    this.#flush();
  }

  #flush(): void {
    this.#timer = undefined;
    const now = performance.now();
    let head = this.#queue[0];
    while (!this.#stopped && !this.#waitingForDrain && head !== undefined && head.dueAt <= now) {
      this.#queue.shift();
      this.#queuedBytes -= head.chunk.length;
      this.#write(head.chunk);
      head = this.#queue[0];
    }
    this.#report();
    this.#schedule();
    this.#throttle();
    this.#endIfFlushed();
  }

  #schedule(): void {
    const head = this.#queue[0];
    if (this.#stopped || this.#timer !== undefined || this.#waitingForDrain || head === undefined) return;
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, head.dueAt - performance.now()));
  }

  #write(chunk: Buffer): void {
    this.#stats.delivered(chunk.length);
    if (!this.#destination.write(chunk)) this.#waitingForDrain = true;
  }

  #throttle(): void {
    if (this.#stopped) return;
    const full = this.#waitingForDrain || this.#queuedBytes >= QUEUE_HIGH_WATER_BYTES;
    if (full) this.#source.pause();
    else this.#source.resume();
  }

  #report(): void {
    this.#stats.buffered(this.#queuedBytes + this.#destination.writableLength);
  }

  #endIfFlushed(): void {
    if (!this.#sourceEnded || this.#destinationEnded || this.#stopped || this.#queue.length > 0) return;
    this.#destinationEnded = true;
    this.#destination.end();
  }
}

/** One accepted client and its connection to the target. */
class ProxiedConnection {
  readonly #client: net.Socket;
  readonly #upstream: net.Socket;
  readonly #forwarders: Forwarder[];

  constructor(
    client: net.Socket,
    upstream: net.Socket,
    delayMs: number,
    stats: { upstream: ForwardStats; downstream: ForwardStats },
    onClosed: () => void,
  ) {
    this.#client = client;
    this.#upstream = upstream;
    this.#forwarders = [
      new Forwarder(client, upstream, delayMs, stats.upstream),
      new Forwarder(upstream, client, delayMs, stats.downstream),
    ];
    let open = 2;
    for (const socket of [client, upstream]) {
      // Resets and refusals are what this proxy exists to provoke; the 'close' that follows
      // every 'error' tears the connection down, so the error itself needs no handling.
      socket.on("error", () => {});
      socket.on("close", (hadError) => {
        // A clean close means both directions of that socket ended; the peer still gets its
        // delayed bytes. After an error nothing more can be delivered, so drop the peer too.
        if (hadError) this.destroy();
        open -= 1;
        if (open === 0) onClosed();
      });
    }
  }

  /** Destroys both sockets at once and drops every delayed chunk. */
  destroy(): void {
    for (const forwarder of this.#forwarders) forwarder.stop();
    this.#client.destroy();
    this.#upstream.destroy();
  }
}

type ProxyState = "open" | "closing" | "closed";

/** The {@link TcpProxy} behind {@link startTcpProxy}. */
class LoopbackProxy implements TcpProxy {
  readonly #server: net.Server;
  readonly #port: number;
  readonly #delayMs: number;
  readonly #live = new Set<ProxiedConnection>();
  #target: ProxyTarget;
  #paused = false;
  #blackholed = false;
  #state: ProxyState = "open";
  #closing: Promise<void> | undefined;
  #bytesUpstream = 0;
  #bytesDownstream = 0;
  #connections = 0;
  #maxBufferedBytes = 0;

  readonly #upstreamStats: ForwardStats = {
    delivered: (bytes) => (this.#bytesUpstream += bytes),
    buffered: (bytes) => this.#noteBuffered(bytes),
    dropping: () => this.#blackholed,
  };
  readonly #downstreamStats: ForwardStats = {
    delivered: (bytes) => (this.#bytesDownstream += bytes),
    buffered: (bytes) => this.#noteBuffered(bytes),
    dropping: () => this.#blackholed,
  };

  /** Takes over a server that is already listening on a TCP port. */
  constructor(server: net.Server, port: number, target: ProxyTarget, delayMs: number) {
    this.#server = server;
    this.#port = port;
    this.#target = { ...target };
    this.#delayMs = delayMs;
    server.on("connection", (client) => this.#accept(client));
    // Failed accepts (EMFILE and the like) are reported here; the listener keeps running,
    // and the test sees the failure as a refused connection.
    server.on("error", () => {});
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get bytesUpstream(): number {
    return this.#bytesUpstream;
  }

  get bytesDownstream(): number {
    return this.#bytesDownstream;
  }

  get connections(): number {
    return this.#connections;
  }

  get maxBufferedBytes(): number {
    return this.#maxBufferedBytes;
  }

  cut(): void {
    for (const connection of this.#live) connection.destroy();
  }

  pause(): void {
    this.#paused = true;
    this.cut();
  }

  blackhole(): void {
    this.#blackholed = true;
  }

  resume(): void {
    // A blackholed connection lost bytes mid-stream; it can only be thrown away.
    if (this.#blackholed) this.cut();
    this.#blackholed = false;
    this.#paused = false;
  }

  setTarget(target: ProxyTarget): void {
    this.#target = { ...target };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = "closing";
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.cut();
    await closed;
    this.#state = "closed";
  }

  #accept(client: net.Socket): void {
    if (this.#paused || this.#state !== "open") {
      client.on("error", () => {}); // the client learns of the refusal from the close itself
      client.destroy();
      return;
    }
    this.#connections += 1;
    const upstream = net.connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true });
    const connection = new ProxiedConnection(
      client,
      upstream,
      this.#delayMs,
      { upstream: this.#upstreamStats, downstream: this.#downstreamStats },
      () => this.#live.delete(connection),
    );
    this.#live.add(connection);
  }

  #noteBuffered(bytes: number): void {
    if (bytes > this.#maxBufferedBytes) this.#maxBufferedBytes = bytes;
  }
}

function checkDelay(delayMs: number | undefined): number {
  if (delayMs === undefined) return 0;
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw new VmtreeError(
      "invalid_argument",
      `expected \`delayMs\` to be a finite number >= 0, got \`${String(delayMs)}\` (${typeof delayMs})`,
    );
  }
  return delayMs;
}

/**
 * Starts a TCP proxy listening on 127.0.0.1 on a free port, forwarding every connection
 * to `options.target`. If the target refuses or resets, the client side is closed too.
 *
 * Resolves once the proxy is listening; rejects if it cannot listen, or with
 * `invalid_argument` if `delayMs` is negative or not finite.
 */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const delayMs = checkDelay(options.delayMs);
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // Connections are I/O events, so none can be accepted before the proxy below takes over.
  const { port } = server.address() as net.AddressInfo;
  return new LoopbackProxy(server, port, options.target, delayMs);
}
