import { status } from "@grpc/grpc-js";
import { cp, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_CERT_SECONDS_ENV, serialOf } from "../src/pki/certificates.ts";
import { siteDnsName } from "../src/pki/site-id.ts";
import { helloStatus } from "./support/direct-client.ts";
import { writeInventory } from "./support/inventory-file.ts";
import { killAll, removeTempDirs, spawnNode } from "./support/processes.ts";
import { initRoot, joinChild, waitFor, type TestNode } from "./support/tree.ts";

/** Node certificates kz signs last this long (the test knob), so they renew after 30 s: time enough to set the tree up on a loaded machine. */
const LIFETIME_S = 45;

const nodeSerial = async (node: TestNode) => serialOf(await readFile(join(node.dir, "tls", "node.pem"), "utf8"));

/** The serial of the certificate a node's link server presents now. */
function presentedSerial(node: TestNode, rootCa: string): Promise<string> {
  const [host, port] = node.address.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), ca: rootCa, servername: siteDnsName(node.site), ALPNProtocols: ["h2"], checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerCertificate().serialNumber.toLowerCase().replace(/^0+/, ""));
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

// kz (signing short node certificates) ← kz.ala ← kz.ala.metro-01, and kz.ast, enrolled
// but not started until its certificate has expired.
describe("certificate renewal (R-6.5)", () => {
  let kz: TestNode;
  let ala: TestNode;
  let metro: TestNode;
  let ast: TestNode;
  let bo: TestNode;
  let rootCa: string;
  let oldDir: string;
  let oldSerial: string;
  let astJoinedMs: number;

  beforeAll(async () => {
    kz = await initRoot("kz");
    kz.process = spawnNode(["serve", "--data", kz.dir], { env: { [NODE_CERT_SECONDS_ENV]: String(LIFETIME_S) } });
    kz.address = /serving on (\S+)/.exec(await kz.process.waitForLine(/serving on \S+/, 20_000))![1]!;
    ala = await joinChild(kz, "kz.ala");
    ast = await joinChild(kz, "kz.ast");
    bo = await joinChild(kz, "kz.bo");
    astJoinedMs = Date.now();
    rootCa = await readFile(join(kz.dir, "tls", "root-ca.pem"), "utf8");
    oldSerial = await nodeSerial(ala);
    oldDir = join(ala.dir, "..", "ala-old");
    await mkdir(oldDir);
    await cp(join(ala.dir, "tls"), join(oldDir, "tls"), { recursive: true });
    await ala.serve();
    metro = await joinChild(ala, "kz.ala.metro-01");
    await metro.serve();
    await waitFor(() => metro.status(), (s) => s.parent?.state === "connected", 20_000, "the metro connected");
    await waitFor(() => ala.status(), (s) => s.parent?.state === "connected", 20_000, "kz.ala connected");
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await removeTempDirs();
  });

  it("renewal - past two thirds of its lifetime a node renews over its link, which stays up; the old serial is refused", async () => {
    expect(await presentedSerial(ala, rootCa)).toBe(oldSerial);
    const upSince = (await ala.status()).parent?.since;
    const renewedSerial = await waitFor(() => nodeSerial(ala), (serial) => serial !== oldSerial, 2 * LIFETIME_S * 1000, "kz.ala renewed").then(() => nodeSerial(ala));
    // The link never went down: connected since before the renewal.
    const after = await ala.status();
    expect(after.parent).toMatchObject({ state: "connected", since: upSince, lastError: null });
    const audited = await waitFor(() => kz.auditList(["--action", "enrolment.renew"]), (e) => e.some((x) => x.origin === "kz") && e.some((x) => x.origin === "kz.ala"), 5_000, "the renewal audited at kz and at kz.ala");
    expect(audited.find((x) => x.origin === "kz.ala")).toMatchObject({ actor: "node", target: "kz.ala", result: "ok", details: { previous_serial: oldSerial, parent: "kz" } });
    expect(audited.find((x) => x.origin === "kz")).toMatchObject({ origin: "kz", actor: "site:kz.ala", target: "kz.ala", result: "ok", details: { previous_serial: oldSerial } });
    // An import after the renewal reaches the parent.
    const file = join(ala.dir, "..", "ala.csv");
    await writeInventory(file, 3, { prefix: "ala" });
    expect(await ala.import(file)).toContain("3 added");
    await waitFor(() => kz.cameras("kz.ala"), (c) => c.length === 3, 20_000, "kz.ala's cameras at kz");
    // Once the child presented the new certificate, the old one is refused.
    await waitFor(() => helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: oldDir }), (code) => code === status.PERMISSION_DENIED, 10_000, "the old certificate refused");
    // kz.ala's own link server presents the renewed certificate, without a restart.
    await waitFor(() => presentedSerial(ala, rootCa), (serial) => serial !== oldSerial, 5_000, "kz.ala presents its renewed certificate");
    expect(renewedSerial).not.toBe(oldSerial);
    // The streams moved to a connection made with the new certificate, never a broken link.
    const output = ala.process!.stdout() + ala.process!.stderr();
    expect(output).toContain("parent link handed over to renewed credentials");
    expect(output).not.toContain("parent link down");
  }, 120_000);

  it("renewal - the renewed node's children keep syncing through it", async () => {
    const file = join(metro.dir, "..", "metro.csv");
    await writeInventory(file, 2, { prefix: "metro" });
    expect(await metro.import(file)).toContain("2 added");
    await waitFor(() => kz.cameras("kz.ala.metro-01"), (c) => c.length === 2, 20_000, "the metro's cameras at kz");
    expect((await metro.status()).parent?.state).toBe("connected");
  }, 30_000);

  it("renewal - a node started past two thirds of its certificate's lifetime renews at once", async () => {
    const before = await nodeSerial(bo);
    const wait = astJoinedMs + (LIFETIME_S * 1000 * 2) / 3 + 500 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await bo.serve();
    await waitFor(() => nodeSerial(bo), (serial) => serial !== before, 5_000, "kz.bo renewed at start");
    await waitFor(() => bo.status(), (s) => s.parent?.state === "connected", 5_000, "kz.bo connected");
  }, 30_000);

  it("renewal - an expired certificate is refused, and the node says why and what to do", async () => {
    const wait = astJoinedMs + LIFETIME_S * 1000 + 1_000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    expect(await helloStatus({ address: kz.address, parentSite: "kz", trustDir: kz.dir, certDir: ast.dir })).toBe(status.UNAUTHENTICATED);
    const refused = await waitFor(() => kz.auditList(["--action", "call.refused", "--site", "kz"]), (e) => e.some((x) => String(x.details.reason).includes("expired")), 5_000, "the refusal audited");
    expect(refused.at(-1)?.details.reason).toContain("or expired");
    await ast.serve();
    const site = await waitFor(() => ast.status(), (s) => (s.parent?.lastError ?? "").includes("expired"), 10_000, "kz.ast reports its expired certificate");
    expect(site.parent?.state).toBe("disconnected");
    expect(site.parent?.lastError).toMatch(/^\[failed_precondition\] the node certificate of kz\.ast expired at \S+ .*enrol kz\.ast again with a new invitation \(vmtree invite --site kz\.ast on kz, then vmtree join/);
  }, 60_000);
});
