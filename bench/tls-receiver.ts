/**
 * The receiving end of bench/transfer.ts's TLS baseline, run as a process of its own so that
 * it does not share the sender's event loop, as a vmtree parent does not share its child's.
 * Accepts one mutual-TLS connection on 127.0.0.1, writes everything it carries to a file
 * (no fsync) and prints `received BYTES` once the sender has ended and the file is closed.
 *
 * Usage: node --import tsx bench/tls-receiver.ts KEY CERT CA OUT
 */
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:tls";
import { pipeline } from "node:stream/promises";

const [keyFile, certFile, caFile, out] = process.argv.slice(2);
if (!keyFile || !certFile || !caFile || !out) throw new Error("usage: tls-receiver.ts KEY CERT CA OUT");
const [key, cert, ca] = await Promise.all([keyFile, certFile, caFile].map((file) => readFile(file)));

const server = createServer({ key, cert, ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
  server.close();
  let bytes = 0;
  socket.on("data", (chunk: Buffer) => (bytes += chunk.length));
  pipeline(socket, createWriteStream(out)).then(
    () => console.log(`received ${bytes}`),
    (error: unknown) => {
      console.error(`receive failed: ${(error as Error).message}`);
      process.exitCode = 1;
    },
  );
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  console.log(`listening on ${address.port}`);
});
