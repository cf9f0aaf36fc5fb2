import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect, type ClientHttp2Session } from "node:http2";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fragment, UploadFragmentRequest, UploadFragmentResponse } from "../src/gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../src/gen/vmtree/v1/link.ts";
import { RAISED_CONNECTIONS_PER_SITE, SERVER_RECEIVE_WINDOW_BYTES } from "../src/link/grpc-server.ts";
import { siteDnsName } from "../src/pki/site-id.ts";
import { fragmentIdFor } from "../src/transfer/fragment-meta.ts";
import { parentClient } from "./support/direct-client.ts";
import { killAll, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, type TestNode } from "./support/tree.ts";

const CHUNK = 1024 * 1024;
const CHUNKS = 32;
/**
 * Growth over an idle node that a hostile child must not push the parent past. With a
 * 16 MiB receive window on every connection, 64 connections grew it by 305 to 617 MB; with
 * the raised window on 3 connections per site, by about 166 MB (issue 5 aims at under 200 MB
 * in all for a receiver, which one connection with 32 uploads still exceeds: about 230 MB).
 */
const MOST_GROWTH_BYTES = 384 * 1024 * 1024;

async function rssBytes(pid: number): Promise<number> {
  const line = (await readFile(`/proc/${pid}/status`, "utf8")).split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(/(\d+)/.exec(line)![1]) * 1024;
}

// A served root kz and its enrolled children kz.ala and kz.ast, not served: the test holds their keys and
// pushes chunks without waiting for their acknowledgements, on one connection per upload.
describe("hostile: memory of a parent under a child's uploads", () => {
  let kz: TestNode;
  const children = new Map<string, TestNode>();
  const clients: ParentServiceClient[] = [];

  beforeAll(async () => {
    kz = await initRoot("kz");
    await kz.serve();
    for (const site of ["kz.ala", "kz.ast"]) children.set(site, await joinChild(kz, site));
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await killAll();
    await removeTempDirs();
  });

  it("hostile - only 3 connections of a child get the raised receive window; another is raised when one of them closes", async () => {
    const tls = (file: string) => readFile(join(children.get("kz.ala")!.dir, "tls", file));
    const [ca, cert, key] = await Promise.all([readFile(join(kz.dir, "tls", "root-ca.pem")), tls("node.pem"), tls("node.key")]);
    /** Resolves with the initial window the server announces once it has settled (its first SETTINGS and any update). */
    const windowOf = (session: ClientHttp2Session) => new Promise<number>((resolve) => {
      session.on("remoteSettings", (settings) => setTimeout(() => resolve(session.remoteSettings.initialWindowSize ?? settings.initialWindowSize ?? 0), 300));
    });
    const sessions: ClientHttp2Session[] = [];
    try {
      const open = () => {
        const session = connect(`https://${kz.address}`, { ca, cert, key, servername: siteDnsName("kz") });
        session.on("error", () => undefined);
        sessions.push(session);
        return session;
      };
      const windows = [];
      for (let i = 0; i < 5; i += 1) windows.push(await windowOf(open()));
      expect(windows).toEqual([...Array(RAISED_CONNECTIONS_PER_SITE).fill(SERVER_RECEIVE_WINDOW_BYTES), 65_535, 65_535]);
      const promoted = new Promise<number>((resolve) => sessions[3]!.on("remoteSettings", (settings) => resolve(settings.initialWindowSize ?? 0)));
      sessions[0]!.close();
      expect(await promoted).toBe(SERVER_RECEIVE_WINDOW_BYTES);
    } finally {
      for (const session of sessions) session.destroy();
    }
  }, 30_000);

  it.each([
    // Each case as another child: the partial uploads one leaves count against that child's cap.
    { uploads: 32, perConnection: 32, child: "kz.ala" },
    { uploads: 64, perConnection: 1, child: "kz.ast" },
  ])("hostile - $uploads uploads, $perConnection per connection, each pushing 32 MiB unacknowledged, grow the parent's RSS by less than 384 MiB and it answers", async ({ uploads, perConnection, child }) => {
    // A fresh process for each case: a baseline that includes the last case's heap would hide growth.
    await kz.stop();
    await kz.serve();
    const data = randomBytes(CHUNK);
    const calls: ClientDuplexStream<UploadFragmentRequest, UploadFragmentResponse>[] = [];
    const baseline = await rssBytes(kz.process!.pid);
    let peak = baseline;
    const sampler = setInterval(() => void rssBytes(kz.process!.pid).then((rss) => (peak = Math.max(peak, rss)), () => undefined), 100);
    try {
      for (let i = 0; i < uploads; i += 1) {
        if (i % perConnection === 0) clients.push(await parentClient({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: children.get(child)!.dir, ownConnection: true }));
        const client = clients.at(-1)!;
        const content = Buffer.concat(Array.from({ length: CHUNKS }, () => data));
        const fragment: Fragment = { id: "", site: child, camera_id: `cam-${uploads}-${i}`, start_ms: 1_790_000_000_000, end_ms: 1_790_000_060_000, size: content.byteLength, sha256: createHash("sha256").update(content).digest("hex"), incident: true, file_name: "", added_ms: 1_790_000_000_000 };
        fragment.id = fragmentIdFor(fragment);
        const call = client.uploadFragment();
        call.on("data", () => undefined);
        call.on("error", () => undefined);
        call.write({ message: { $case: "start", value: { fragment, priority: "incident", request_id: "" } } });
        for (let c = 0; c < CHUNKS; c += 1) call.write({ message: { $case: "chunk", value: { offset: c * CHUNK, data, crc32: crc32(data) } } });
        calls.push(call);
      }
      await new Promise((resolve) => setTimeout(resolve, 15_000));
      const asked = Date.now();
      expect((await kz.status()).site).toBe("kz");
      expect(Date.now() - asked).toBeLessThan(10_000);
    } finally {
      clearInterval(sampler);
      for (const call of calls) call.cancel();
    }
    console.log(`kz RSS: baseline ${baseline} bytes, peak ${peak} bytes (+${peak - baseline}) under ${uploads} unacknowledged uploads, ${perConnection} per connection`);
    expect(peak - baseline).toBeLessThan(MOST_GROWTH_BYTES);
  }, 120_000);
});
