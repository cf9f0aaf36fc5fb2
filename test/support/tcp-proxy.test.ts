import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, describe, expect, it } from "vitest";
import { startTcpProxy, type ProxyTarget, type TcpProxy } from "./tcp-proxy.ts";

const GREETING = Buffer.from("hello\n");
const MiB = 1024 * 1024;

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
const proxies: TcpProxy[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.allSettled(proxies.splice(0).map((proxy) => proxy.close()));
  await Promise.allSettled(servers.splice(0).map(closeServer));
});

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A server on 127.0.0.1:0 that sends `greeting` on connect and then echoes everything back. */
async function startEchoServer(greeting: Buffer = GREETING): Promise<ProxyTarget> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on("error", () => {}); // the proxy cutting a connection resets it
    socket.write(greeting);
    socket.pipe(socket);
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as net.AddressInfo;
  return { host: "127.0.0.1", port: address.port };
}

async function start(target: ProxyTarget, delayMs?: number): Promise<TcpProxy> {
  const proxy = await startTcpProxy({ target, delayMs });
  proxies.push(proxy);
  return proxy;
}

/** A client socket that records what it receives and whether it was closed. */
class Client {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  readonly #chunks: Buffer[] = [];
  #length = 0;
  #wanted: { bytes: number; resolve: () => void } | undefined;

  constructor(port: number) {
    this.socket = net.connect({ host: "127.0.0.1", port });
    sockets.push(this.socket);
    this.socket.on("error", () => {}); // a cut or refused connection may arrive as ECONNRESET
    this.socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
      if (this.#wanted && this.#length >= this.#wanted.bytes) this.#wanted.resolve();
    });
    // Not events.once: it rejects on the 'error' that precedes a refused connection's 'close'.
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  get received(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Resolves with the first `bytes` bytes once they have arrived; rejects if the socket closes first. */
  async receive(bytes: number): Promise<Buffer> {
    if (this.#length < bytes) {
      const arrived = new Promise<void>((resolve) => (this.#wanted = { bytes, resolve }));
      const closedEarly = this.closed.then(() => {
        throw new Error(`closed after ${this.#length} of ${bytes} bytes`);
      });
      await Promise.race([arrived, closedEarly]);
    }
    return this.received.subarray(0, bytes);
  }
}

async function connected(port: number): Promise<Client> {
  const client = new Client(port);
  await client.receive(GREETING.length);
  return client;
}

describe("tcp proxy", () => {
  it("tcp proxy - forwards bytes both ways and counts them exactly", async () => {
    const proxy = await start(await startEchoServer());
    const client = await connected(proxy.port);
    const payload = randomBytes(10_000);
    client.socket.write(payload);
    const echoed = await client.receive(GREETING.length + payload.length);

    expect(echoed.subarray(GREETING.length).equals(payload)).toBe(true);
    expect(proxy.bytesUpstream).toBe(payload.length);
    expect(proxy.bytesDownstream).toBe(GREETING.length + payload.length);
    expect(proxy.connections).toBe(1);
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
  }, 10_000);

  it("tcp proxy - cut closes live connections and accepts new ones", async () => {
    const proxy = await start(await startEchoServer());
    const first = await connected(proxy.port);

    proxy.cut();
    await first.closed;

    const second = await connected(proxy.port);
    second.socket.write("again");
    expect((await second.receive(GREETING.length + 5)).toString()).toBe("hello\nagain");
    expect(proxy.connections).toBe(2);
  }, 10_000);

  it("tcp proxy - pause drops and refuses connections until resume", async () => {
    const proxy = await start(await startEchoServer());
    const live = await connected(proxy.port);

    proxy.pause();
    await live.closed;
    const refused = new Client(proxy.port);
    await refused.closed;
    expect(refused.received.length).toBe(0);

    proxy.resume();
    await connected(proxy.port);
    expect(proxy.connections).toBe(2);
  }, 10_000);

  it("tcp proxy - setTarget sends new connections to the new target", async () => {
    const proxy = await start(await startEchoServer());
    const old = await connected(proxy.port);

    proxy.setTarget(await startEchoServer(Buffer.from("other\n")));
    const moved = new Client(proxy.port);

    expect((await moved.receive(6)).toString()).toBe("other\n");
    old.socket.write("x");
    expect((await old.receive(GREETING.length + 1)).toString()).toBe("hello\nx");
  }, 10_000);

  it("tcp proxy - closes the client when the target refuses", async () => {
    const target = await startEchoServer();
    await closeServer(servers.pop() as net.Server);
    const proxy = await start(target);

    const client = new Client(proxy.port);
    await client.closed;
    expect(client.received.length).toBe(0);
  }, 10_000);

  it("tcp proxy - delayMs delays each direction", async () => {
    const proxy = await start(await startEchoServer(), 50);
    const client = await connected(proxy.port);

    const startedAt = performance.now();
    client.socket.write("x");
    await client.receive(GREETING.length + 1);

    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(95);
  }, 10_000);

  it("tcp proxy - delayed 32 MiB round trip arrives intact with bounded buffering", async () => {
    const proxy = await start(await startEchoServer(Buffer.alloc(0)), 50);
    const payload = randomBytes(32 * MiB);
    const client = new Client(proxy.port);
    const chunks = Array.from({ length: payload.length / (64 * 1024) }, (_, i) =>
      payload.subarray(i * 64 * 1024, (i + 1) * 64 * 1024),
    );

    await pipeline(Readable.from(chunks), client.socket, { end: false });
    const echoed = await client.receive(payload.length);

    expect(sha256(echoed)).toBe(sha256(payload));
    expect(proxy.bytesUpstream).toBe(payload.length);
    expect(proxy.bytesDownstream).toBe(payload.length);
    expect(proxy.maxBufferedBytes).toBeGreaterThan(0);
    expect(proxy.maxBufferedBytes).toBeLessThanOrEqual(4 * MiB);
  }, 30_000);

  it("tcp proxy - close is idempotent and stops listening", async () => {
    const proxy = await start(await startEchoServer());
    const client = await connected(proxy.port);

    const closing = proxy.close();
    expect(proxy.close()).toBe(closing);
    await closing;
    await client.closed;

    const late = new Client(proxy.port);
    await late.closed;
    expect(late.received.length).toBe(0);
  }, 10_000);

  it("tcp proxy - rejects a negative delay", async () => {
    await expect(startTcpProxy({ target: { host: "127.0.0.1", port: 1 }, delayMs: -1 })).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });
});

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}
