import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Client, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashEntry } from "../src/audit/audit-hash.ts";
import type { AuditEntry, AuditHead } from "../src/gen/vmtree/v1/audit.ts";
import { HelloResponse, SyncAuditResponse, SyncInventoryResponse } from "../src/gen/vmtree/v1/link.ts";
import { channelOptionsFor, clientCredentials } from "../src/link/tls.ts";
import { sampleCamera } from "./support/camera-fixture.ts";
import { writeInventory } from "./support/inventory-file.ts";
import { killAll, makeTempDir, removeTempDirs } from "./support/processes.ts";
import { initRoot, joinChild, ok, waitFor, type CameraJson, type TestNode } from "./support/tree.ts";

/*
 * Fuzzes every service the national node kz serves on its link port (ParentService and
 * EnrolmentService) over a valid mutual-TLS channel, as its enrolled child kz.ala (stopped,
 * so its certificate is free for the fuzzer). Messages are random bytes or valid messages
 * with a corrupting mutation, drawn from a seeded PRNG:
 *   VMTREE_FUZZ_SEED=N   replays a run (the seed is printed on every run and failure)
 *   VMTREE_FUZZ_MS=N     fuzzing time, default 12 000 ms (the whole file takes ~20 s)
 * Afterwards kz must still serve, every call must have ended with a status (never INTERNAL
 * or UNKNOWN), no corrupt message may have been acknowledged, and kz's stores must verify with kz.ala's inventory
 * and kz's policy unchanged.
 */

const SEED = Number(process.env.VMTREE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FUZZ_MS = Number(process.env.VMTREE_FUZZ_MS ?? 12_000);
const CALL_DEADLINE_MS = 2_000;
const WORKERS = 8;
const CHILD = "kz.ala";

const POLICY = `
roles:
  operator: [view_live, view_archive]
bindings:
  - id: ops-live
    subject: user:ivanov
    role: operator
    scope: kz.ala
    effect: allow
    valid_from: 2026-12-01
    valid_until: 2027-06-01
`;

// ---------------------------------------------------------------- PRNG (mulberry32)

class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---------------------------------------------------------------- a protobuf writer that can say anything

type Num = number | bigint;
/** One field: a varint (any 64-bit pattern, negatives as two's complement), a double, or length-delimited bytes. */
type Field = { no: number; varint: Num } | { no: number; double: number } | { no: number; bytes: Buffer | string | Field[] };

function varint(value: Num): Buffer {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

function encode(fields: readonly Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    if ("varint" in field) parts.push(varint(field.no << 3), varint(field.varint));
    else if ("double" in field) {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(field.double);
      parts.push(varint((field.no << 3) | 1), b);
    } else {
      const body = typeof field.bytes === "string" ? Buffer.from(field.bytes, "utf8") : Buffer.isBuffer(field.bytes) ? field.bytes : encode(field.bytes);
      parts.push(varint((field.no << 3) | 2), varint(body.length), body);
    }
  }
  return Buffer.concat(parts);
}

const str = (no: number, s: string): Field => ({ no, bytes: s });
const num = (no: number, v: Num): Field => ({ no, varint: v });
const msg = (no: number, fields: Field[]): Field => ({ no, bytes: fields });

// ---------------------------------------------------------------- hostile values

const U64_MAX = 2n ** 64n - 1n;
const BAD_ORIGINS = ["kz", "kz.ast", "kz.alax", "kz.ala-2", "kz.ast.akimat", "kz.ala..x", "../../x", "kz.ala/../kz.ast", "KZ.ALA", "", "kz.ala\u0000", "kz.ala.\u202e", `kz.ala.${"a".repeat(5000)}`, "kz.ala.a.b.c.d.e.f.g"];
const BAD_IDS = ["../../x", "..", ".hidden", "", "a/b", "x\u0000y", "x\ny", "c".repeat(65), "cam\u202e1", "ca m", "%2e%2e%2f"];
const BAD_HASHES = ["", "0".repeat(63), "g".repeat(64), "A".repeat(64), "0".repeat(65), "../../etc/passwd", "0".repeat(64) + "\u0000"];
const BAD_SITES = ["kz.ala", "kz", "kz.ast", "../../x", "", "KZ.NEW", "kz.new", "kz.ala.deep", `kz.${"b".repeat(300)}`, "kz.new\u0000", "kz.a.b.c.d.e.f.g.h.i"];


interface Fuzzed {
  method: string;
  kind: "unary" | "stream";
  messages: Buffer[];
  /** What made it corrupt; undefined when the message may well be valid (random bytes, say). */
  corrupt?: string;
}

interface Legit {
  /** kz's inventory checkpoint of kz.ala. */
  seq: number;
  head: AuditHead;
}

function cameraFields(camera: Record<string, string | number>, override: Partial<Record<string, Field>>): Field[] {
  const order = ["camera_id", "name", "object_class", "camera_type", "vendor", "model", "firmware", "protocol", "stream_url", "codec", "width", "height", "fps", "bitrate_kbps", "ir_range_m", "mount_height_m", "latitude", "longitude", "address", "installed_at", "status"];
  return order.map((key, i) => {
    const no = i + 1;
    if (override[key]) return override[key];
    const value = camera[key]!;
    if (typeof value === "string") return str(no, value);
    return no >= 15 && no <= 18 ? { no, double: value } : num(no, value);
  });
}

/** A change for kz.ala that would be valid, with exactly one corrupting mutation. */
function corruptChange(rng: Rng, legit: Legit, label: string[]): Field[] {
  const seq = legit.seq + 1 + rng.int(5);
  const id = `fz-${rng.int(1e6)}`;
  let origin: Field = str(1, CHILD);
  let epoch: Field = num(2, 1);
  let seqField: Field = num(3, seq);
  let cameraId: Field = str(4, id);
  const override: Partial<Record<string, Field>> = {};
  const cases: (() => void)[] = [
    () => {
      const o = rng.pick(BAD_ORIGINS);
      label.push(`origin ${JSON.stringify(o.slice(0, 20))}`);
      origin = str(1, o);
    },
    () => {
      const e = rng.pick<Num>([0, 2, 7, 2 ** 32 - 1, 2 ** 32, -1]);
      label.push(`epoch ${e}`);
      epoch = num(2, e);
    },
    () => {
      const s = rng.pick<Num>([0, -1, 2 ** 53 + 1, U64_MAX]);
      label.push(`seq ${s}`);
      seqField = num(3, s);
    },
    () => {
      const bad = rng.pick(BAD_IDS);
      label.push(`camera_id ${JSON.stringify(bad)}`);
      cameraId = str(4, bad);
      override.camera_id = str(1, bad);
    },
    () => {
      label.push("camera.camera_id differs");
      override.camera_id = str(1, `${id}-other`);
    },
    () => {
      const field = rng.pick(["name", "vendor", "model", "address", "stream_url"]);
      label.push(`oversize ${field}`);
      const no = ["camera_id", "name", "object_class", "camera_type", "vendor", "model", "firmware", "protocol", "stream_url", "codec"].indexOf(field) + 1 || 19;
      override[field] = str(no, "x".repeat(513 + rng.int(200_000)));
    },
    () => {
      const field = rng.pick(["ir_range_m", "mount_height_m", "latitude", "longitude"]);
      const value = rng.pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
      label.push(`${field} ${value}`);
      override[field] = { no: 15 + ["ir_range_m", "mount_height_m", "latitude", "longitude"].indexOf(field), double: value };
    },
  ];
  rng.pick(cases)();
  const camera = sampleCamera(id) as unknown as Record<string, string | number>;
  return [origin, epoch, seqField, cameraId, msg(5, cameraFields(camera, override))];
}

function inventoryMessage(rng: Rng, legit: Legit): Fuzzed {
  const label: string[] = [];
  const batch = num(1, rng.int(1e9));
  const shape = rng.int(6);
  let changes: Field[][];
  let extra: Field[] = [];
  if (shape === 0) {
    // Duplicated or out-of-order sequences in one batch.
    const seq = legit.seq + 10 + rng.int(5);
    const [a, b] = rng.chance(0.5) ? [seq, seq] : [seq, seq - 1 - rng.int(3)];
    label.push(`sequences ${a} then ${b}`);
    const change = (s: number, n: number): Field[] => [str(1, CHILD), num(2, 1), num(3, s), str(4, `fz-${n}`), msg(5, cameraFields(sampleCamera(`fz-${n}`) as unknown as Record<string, string | number>, {}))];
    changes = [change(a, 1), change(b, 2)];
  } else if (shape === 1) {
    label.push("new_epochs outside the subtree or epoch 0");
    extra = [msg(4, rng.chance(0.5) ? [str(1, rng.pick(BAD_ORIGINS)), num(2, 2)] : [str(1, `${CHILD}.fz`), num(2, 0)])];
    changes = [];
  } else if (shape === 2) {
    label.push("more than 1000 changes");
    changes = Array.from({ length: 1001 }, (_, i) => [str(1, CHILD), num(2, 1), num(3, legit.seq + 1 + i), str(4, `fz-${i}`)]);
  } else {
    changes = [corruptChange(rng, legit, label)];
    // Sometimes hide the bad change behind good-looking ones that must go with it.
    if (rng.chance(0.3)) changes.unshift([str(1, CHILD), num(2, 1), num(3, legit.seq + 100), str(4, "fz-hidden")]);
  }
  const messages = [encode([batch, ...changes.map((c) => msg(2, c)), num(3, rng.int(10)), ...extra])];
  return { method: "/vmtree.v1.ParentService/SyncInventory", kind: "stream", messages, corrupt: label.join("; ") };
}

function auditEntry(legit: Legit, patch: Partial<AuditEntry> = {}): AuditEntry {
  const base = {
    origin: CHILD,
    epoch: 1,
    seq: legit.head.seq + 1,
    time_ms: Date.now(),
    actor: "user:fuzz",
    action: "vms.view_live",
    target: "fz-1",
    result: "ok",
    details: "{}",
    prev_hash: legit.head.hash,
  };
  return { ...base, hash: hashEntry(base), ...patch };
}

function auditFields(e: AuditEntry, override: Partial<Record<keyof AuditEntry, Field>> = {}): Field[] {
  const keys: (keyof AuditEntry)[] = ["origin", "epoch", "seq", "time_ms", "actor", "action", "target", "result", "details", "prev_hash", "hash"];
  return keys.map((key, i) => override[key] ?? (typeof e[key] === "number" ? num(i + 1, e[key]) : str(i + 1, e[key] as string)));
}

function auditMessage(rng: Rng, legit: Legit): Fuzzed {
  const label: string[] = [];
  let fields: Field[];
  const cases: (() => Field[])[] = [
    () => {
      const o = rng.pick(BAD_ORIGINS);
      label.push(`origin ${JSON.stringify(o.slice(0, 20))}`);
      return auditFields(auditEntry(legit, { origin: o }));
    },
    () => {
      const [key, no] = rng.pick([["epoch", 2], ["seq", 3], ["time_ms", 4]] as const);
      const v = rng.pick<Num>(key === "time_ms" ? [-1, 8.64e15 + 1, U64_MAX, 2n ** 63n] : [0, -1, 2 ** 53 + 1, U64_MAX]);
      label.push(`${key} ${v}`);
      return auditFields(auditEntry(legit), { [key]: num(no, v) });
    },
    () => {
      const key = rng.pick(["actor", "action", "target", "result"] as const);
      label.push(`oversize ${key}`);
      return auditFields(auditEntry(legit, { [key]: "y".repeat(513 + rng.int(50_000)) }));
    },
    () => {
      const details = rng.pick(["[]", "null", "1", "{", `${"{\"a\":".repeat(40)}1${"}".repeat(40)}`, "x".repeat(20_000), `{"a":"${"z".repeat(17_000)}"}`]);
      label.push(`details ${JSON.stringify(details.slice(0, 12))}`);
      return auditFields(auditEntry(legit, { details }));
    },
    () => {
      const h = rng.pick(BAD_HASHES);
      label.push(`malformed hash ${JSON.stringify(h.slice(0, 8))}`);
      return auditFields(auditEntry(legit, rng.chance(0.5) ? { hash: h } : { prev_hash: h }));
    },
  ];
  fields = rng.pick(cases)();
  const messages = [encode([num(1, rng.int(1e9)), msg(2, fields), num(3, 0)])];
  return { method: "/vmtree.v1.ParentService/SyncAudit", kind: "stream", messages, corrupt: label.join("; ") };
}

/** Well-formed entries that break kz.ala's chain: never stored; the parent may quarantine the origin. */
function auditChainBreak(rng: Rng, legit: Legit): Fuzzed {
  const label: string[] = [];
  const flip = (h: string) => (h[0] === "0" ? "1" : "0") + h.slice(1);
  const e = rng.pick([
    () => (label.push("wrong hash"), auditEntry(legit, { hash: flip(auditEntry(legit).hash) })),
    () => (label.push("content edited after hashing"), auditEntry(legit, { actor: "user:intruder" })),
    () => (label.push("prev_hash differs"), ((b) => ({ ...b, hash: hashEntry(b) }))({ ...auditEntry(legit), prev_hash: flip(legit.head.hash) })),
    () => (label.push("gap"), ((b) => ({ ...b, hash: hashEntry(b) }))({ ...auditEntry(legit), seq: legit.head.seq + 3 })),
    () => (label.push("fork of a held entry"), ((b) => ({ ...b, hash: hashEntry(b) }))({ ...auditEntry(legit), seq: legit.head.seq, actor: "user:forger" })),
    () => (label.push("wrong epoch"), ((b) => ({ ...b, hash: hashEntry(b) }))({ ...auditEntry(legit), epoch: 2, seq: 1, prev_hash: "0".repeat(64) })),
  ])();
  const messages = [encode([num(1, rng.int(1e9)), msg(2, auditFields(e)), num(3, 0)])];
  return { method: "/vmtree.v1.ParentService/SyncAudit#chain", kind: "stream", messages, corrupt: label.join("; ") };
}

function policyMessage(rng: Rng): Fuzzed {
  const label: string[] = [];
  const version = (author: string, v: Num): Field[] => [str(1, author), num(2, v)];
  const first: Field[] = [];
  const later: Field[] = [];
  const cases: (() => void)[] = [
    () => {
      const author = rng.pick(BAD_ORIGINS.filter((o) => o !== "kz" && o !== "kz.ast" && o !== "kz.alax" && o !== "kz.ala-2" && o !== "kz.ast.akimat"));
      label.push(`held author ${JSON.stringify(author.slice(0, 20))}`);
      first.push(msg(1, version(author, 1)));
    },
    () => {
      const v = rng.pick<Num>([0, -1, 2 ** 53 + 1, U64_MAX]);
      label.push(`held version ${v}`);
      first.push(msg(1, version("kz", v)));
    },
    () => {
      label.push("9 held versions");
      for (let i = 0; i < 9; i++) first.push(msg(1, version(`kz.x${i}`, 1)));
    },
    () => {
      label.push("held in a later message");
      later.push(msg(1, version("kz", 1)));
    },
    () => {
      const site = rng.pick(["kz", "kz.ast", "kz.alax", "kz.ast.akimat"]);
      label.push(`applied report for ${site}, outside the subtree`);
      (rng.chance(0.5) ? first : later).push(msg(2, [str(1, site), msg(2, version("kz", 1)), num(3, Date.now())]));
    },
    () => {
      const site = rng.pick(BAD_SITES.filter((s) => !s.startsWith("kz.ala") && s !== "kz" && s !== "kz.ast" && s !== "kz.new"));
      label.push(`applied report for bogus site ${JSON.stringify(site.slice(0, 20))}`);
      first.push(msg(2, [str(1, site), msg(2, version("kz", 1)), num(3, Date.now())]));
    },
    () => {
      const ms = rng.pick<Num>([-1, 2 ** 53 + 1, 2n ** 63n]);
      label.push(`applied_ms ${ms}`);
      first.push(msg(2, [str(1, CHILD), msg(2, version("kz", 1)), num(3, ms)]));
    },
    () => {
      label.push("10 applied versions");
      first.push(msg(2, [str(1, CHILD), ...Array.from({ length: 10 }, (_, i) => msg(2, version(`kz.y${i}`, 1))), num(3, Date.now())]));
    },
    () => {
      label.push("applied version by a bogus author");
      first.push(msg(2, [str(1, CHILD), msg(2, version(rng.pick(BAD_IDS), 1)), num(3, Date.now())]));
    },
    () => {
      label.push("more than 1000 applied reports");
      for (let i = 0; i < 1001; i++) first.push(msg(2, [str(1, `${CHILD}.s${i}`), num(3, 1)]));
    },
  ];
  rng.pick(cases)();
  const messages = [encode(first)];
  if (later.length > 0) messages.push(encode(later));
  return { method: "/vmtree.v1.ParentService/SyncPolicies", kind: "stream", messages, corrupt: label.join("; ") };
}

function joinMessage(rng: Rng): Fuzzed {
  const site = rng.pick(BAD_SITES);
  const secret = rng.pick(["", "x", rng.bytes(24).toString("base64url"), "../../secret", "\u0000".repeat(10), "s".repeat(100_000)]);
  const csr = () => rng.pick(["", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", rng.bytes(200).toString("latin1"), "c".repeat(9000)]);
  const messages = [encode([str(1, site), str(2, secret), str(3, csr()), str(4, csr())])];
  return { method: "/vmtree.v1.EnrolmentService/Join", kind: "unary", messages, corrupt: `join ${JSON.stringify(site.slice(0, 20))} with a bogus token` };
}

function renewMessage(rng: Rng): Fuzzed {
  const csr = rng.pick(["", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", rng.bytes(300).toString("latin1"), "c".repeat(8193), `-----BEGIN CERTIFICATE REQUEST-----\n${rng.bytes(400).toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`]);
  return { method: "/vmtree.v1.ParentService/RenewCertificate", kind: "unary", messages: [encode([str(1, csr)])], corrupt: `renew with CSR ${JSON.stringify(csr.slice(0, 12))}…` };
}

const STREAMS = ["/vmtree.v1.ParentService/SyncInventory", "/vmtree.v1.ParentService/SyncAudit", "/vmtree.v1.ParentService/SyncPolicies"];
const UNARIES = ["/vmtree.v1.ParentService/Hello", "/vmtree.v1.ParentService/RenewCertificate", "/vmtree.v1.EnrolmentService/Join", "/vmtree.v1.EnrolmentService/GetTrustBundle"];

/** Random bytes, or a valid message with random bytes flipped, to any method: no expectation but an end. */
function randomMessage(rng: Rng, legit: Legit): Fuzzed {
  const stream = rng.chance(0.6);
  const method = stream ? rng.pick(STREAMS) : rng.pick(UNARIES);
  const count = stream ? 1 + rng.int(3) : 1;
  const messages: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (rng.chance(0.5)) {
      messages.push(rng.bytes(rng.pick([0, 1, 2, 5, 17, 100, 1000, 70_000])));
    } else {
      const base = method.endsWith("SyncAudit") ? auditMessage(rng, legit) : method.endsWith("SyncPolicies") ? policyMessage(rng) : inventoryMessage(rng, legit);
      const bytes = Buffer.from(base.messages[0]!);
      for (let k = 0; k < 1 + rng.int(4); k++) bytes[rng.int(bytes.length)] = rng.int(256);
      messages.push(rng.chance(0.2) ? bytes.subarray(0, rng.int(bytes.length)) : bytes);
    }
  }
  return { method: `${method}#random`, kind: stream ? "stream" : "unary", messages };
}

function generate(rng: Rng, legit: Legit): Fuzzed {
  const roll = rng.int(100);
  if (roll < 25) return randomMessage(rng, legit);
  if (roll < 47) return inventoryMessage(rng, legit);
  if (roll < 64) return auditMessage(rng, legit);
  if (roll < 70) return auditChainBreak(rng, legit);
  if (roll < 87) return policyMessage(rng);
  if (roll < 92) return renewMessage(rng);
  return joinMessage(rng);
}

// ---------------------------------------------------------------- calling

interface Outcome {
  code: status;
  details: string;
  responses: Buffer[];
}

const identity = (b: Buffer) => b;

function call(client: Client, fuzzed: Fuzzed): Promise<Outcome> {
  const path = fuzzed.method.split("#")[0]!;
  const deadline = Date.now() + CALL_DEADLINE_MS;
  return new Promise((resolve) => {
    if (fuzzed.kind === "unary") {
      client.makeUnaryRequest(path, identity, identity, fuzzed.messages[0]!, new Metadata(), { deadline }, (error: ServiceError | null, value?: Buffer) =>
        resolve({ code: error ? error.code : status.OK, details: error?.details ?? "", responses: value ? [value] : [] }),
      );
      return;
    }
    const responses: Buffer[] = [];
    const stream = client.makeBidiStreamRequest(path, identity, identity, new Metadata(), { deadline });
    stream.on("data", (data: Buffer) => responses.push(data));
    stream.on("error", () => undefined);
    stream.on("status", (s: { code: status; details: string }) => resolve({ code: s.code, details: s.details, responses }));
    for (const m of fuzzed.messages) stream.write(m);
    if (!process.env.VMTREE_FUZZ_NO_HALF_CLOSE) stream.end();
  });
}

// ---------------------------------------------------------------- the test

describe(`fuzz - hostile messages to every link service of a running node (seed ${SEED})`, () => {
  let kz: TestNode;
  let ala: TestNode;
  let client: Client;
  let legit: Legit;
  let before: { cameras: CameraJson[]; policy: unknown; chain: unknown };
  const counts = new Map<string, Map<string, number>>();
  const violations: string[] = [];
  const hung: string[] = [];
  /** Random messages that turned out valid and were stored (only ever cameras named `fz-…`). */
  const storedByChance = new Set<string>();

  const policySets = async () => (JSON.parse(ok(await kz.cli(["policy", "show", "--json"]))) as { sets: unknown }).sets;
  const childChain = async () => (await kz.auditVerify(CHILD)).chains.find((c) => c.origin === CHILD);

  beforeAll(async () => {
    console.log(`fuzz seed ${SEED} (replay with VMTREE_FUZZ_SEED=${SEED}), ${FUZZ_MS} ms`);
    const files = await makeTempDir("vmtree-fuzz-files-");
    kz = await initRoot("kz");
    await kz.serve();
    ala = await joinChild(kz, CHILD);
    await ala.serve();
    const inventory = join(files, "ala.csv");
    await writeInventory(inventory, 5, { prefix: "ala" });
    await ala.import(inventory);
    const policyFile = join(files, "policy.yaml");
    await (await import("node:fs/promises")).writeFile(policyFile, POLICY);
    ok(await kz.cli(["policy", "apply", policyFile]));
    await waitFor(() => kz.cameras(CHILD), (c) => c.length === 5, 20_000, "kz.ala's cameras at kz");
    await waitFor(
      () => ala.status(),
      (s) => s.parent?.state === "connected" && s.parent.pending === 0 && s.parent.auditPending === 0 && (s.policy?.versions.some((v) => v.author === "kz") ?? false),
      20_000,
      "kz.ala in sync",
    );
    await ala.stop();
    before = { cameras: await kz.cameras(), policy: await policySets(), chain: await childChain() };

    const tls = (name: string) => readFile(join(ala.dir, "tls", name), "utf8");
    const creds = clientCredentials({ rootCa: await tls("root-ca.pem"), nodeCertChain: await tls("node.pem"), nodeKey: await tls("node.key") }, "kz");
    client = new Client(kz.address, creds, { ...channelOptionsFor("kz"), "grpc.max_send_message_length": 16 * 1024 * 1024 });
    const hello = await call(client, { method: "/vmtree.v1.ParentService/Hello", kind: "unary", messages: [encode([num(1, 1)])] });
    expect(hello.code).toBe(status.OK);
    const response = HelloResponse.decode(hello.responses[0]!);
    legit = {
      seq: response.checkpoints.find((c) => c.origin === CHILD)!.seq,
      head: response.audit_heads.find((h) => h.origin === CHILD)!,
    };
  });

  afterAll(async () => {
    if (process.env.VMTREE_FUZZ_DEBUG) console.log(kz?.process?.stdout().slice(-3000), kz?.process?.stderr().slice(-3000));
    client?.close();
    await killAll();
    await removeTempDirs();
  });

  it("every call ends with a status and no corrupt message is acknowledged", async () => {
    const rng = new Rng(SEED);
    const end = Date.now() + FUZZ_MS;
    let calls = 0;
    const worker = async () => {
      while (Date.now() < end) {
        const fuzzed = generate(rng, legit);
        const started = Date.now();
        const outcome = await call(client, fuzzed);
        calls++;
        const perMethod = counts.get(fuzzed.method) ?? new Map<string, number>();
        perMethod.set(status[outcome.code], (perMethod.get(status[outcome.code]) ?? 0) + 1);
        counts.set(fuzzed.method, perMethod);
        const where = `${fuzzed.method} (${fuzzed.corrupt ?? "random"}) after ${Date.now() - started} ms: ${status[outcome.code]} ${outcome.details.slice(0, 200)}`;
        if (outcome.code === status.DEADLINE_EXCEEDED) hung.push(`hung: ${where}`);
        // Bad input is the caller's error, never the node's: no INTERNAL, no UNKNOWN.
        if (outcome.code === status.INTERNAL || outcome.code === status.UNKNOWN) violations.push(`node failed: ${where}`);
        // Entries of kz.ala's own origin under another epoch are a break of its chain too: the
        // parent acknowledges them with the origin quarantined (docs/AUDIT.md), storing nothing.
        const quarantinedChild = outcome.responses.some((r) => safeDecode(() => SyncAuditResponse.decode(r).quarantined_origins)?.includes(CHILD));
        if (fuzzed.corrupt !== undefined && !fuzzed.method.endsWith("#chain") && !quarantinedChild && outcome.code === status.OK) violations.push(`accepted: ${where}`);
        if (fuzzed.method.endsWith("#chain") || fuzzed.method.includes("SyncAudit")) {
          // A chain break may be acknowledged (the origin is then quarantined), but kz.ala's head must not move.
          for (const r of outcome.responses) {
            for (const head of safeDecode(() => SyncAuditResponse.decode(r).heads) ?? []) {
              if (head.origin === CHILD && (head.seq !== legit.head.seq || head.hash !== legit.head.hash)) violations.push(`stored: ${where}: head ${JSON.stringify(head)}`);
            }
          }
        }
        if (fuzzed.method.includes("SyncInventory")) {
          for (const r of outcome.responses) {
            for (const cp of safeDecode(() => SyncInventoryResponse.decode(r).checkpoints) ?? []) {
              if (cp.origin !== CHILD || (cp.seq === legit.seq && cp.epoch === 1)) continue;
              // Mutated bytes can happen to make a valid batch, which kz.ala may well send.
              if (fuzzed.corrupt === undefined) storedByChance.add(fuzzed.method);
              else violations.push(`stored: ${where}: checkpoint ${JSON.stringify(cp)}`);
            }
          }
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    const table = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([method, byCode]) => `  ${method}: ${[...byCode].map(([c, n]) => `${c}=${n}`).join(" ")}`);
    console.log(`fuzz seed ${SEED}: ${calls} calls in ${FUZZ_MS} ms\n${table.join("\n")}`);
    expect(violations, `seed ${SEED}`).toEqual([]);
    expect(calls).toBeGreaterThan(0);
  });

  // This test found that a sync stream refused inside its read loop never sent its status
  // (leaving `for await` destroyed the server stream first), that a cancelled stream kept its
  // place among a child's calls for ever, and that a message grpc-js failed to decode after a
  // response left the call without a status (all fixed in eachMessage and undecodable.ts).
  it("every call ends with its status before its deadline", () => {
    expect(hung, `seed ${SEED}`).toEqual([]);
  });

  it("the node still serves, logged no unhandled error, and its stores verify unchanged", async () => {
    expect(kz.process, `seed ${SEED}`).toBeDefined();
    const st = await kz.status();
    expect(st.running).toBe(true);
    const log = `${kz.process!.stdout()}\n${kz.process!.stderr()}`;
    expect(log, `seed ${SEED}`).not.toMatch(/unhandled|uncaught|TypeError|RangeError|ReferenceError|heap out of memory/i);

    const cameras = await kz.cameras();
    expect(cameras.filter((c) => !c.camera_id.startsWith("fz-")), `seed ${SEED}`).toEqual(before.cameras);
    if (storedByChance.size === 0) expect(cameras.length, `seed ${SEED}`).toBe(before.cameras.length);
    expect(await policySets(), `seed ${SEED}`).toEqual(before.policy);
    // A chain break sent as kz.ala quarantines its stream (by design); what is stored must still verify.
    const quarantined = (await kz.status()).audit.quarantined.map((q) => q.origin);
    for (const origin of quarantined) expect(origin === CHILD || origin.startsWith(`${CHILD}.`), `seed ${SEED}: ${origin}`).toBe(true);
    for (const origin of quarantined) ok(await kz.cli(["audit", "resolve", "--site", origin]));
    const verified = await kz.auditVerify();
    expect(verified.chains.filter((c) => !c.ok), `seed ${SEED}`).toEqual([]);
    expect(verified.code, `seed ${SEED}`).toBe(0);
    const chain = verified.chains.find((c) => c.origin === CHILD);
    const was = before.chain as { lastSeq: number; headHash: string };
    expect({ lastSeq: chain?.lastSeq, headHash: chain?.headHash }).toEqual({ lastSeq: was.lastSeq, headHash: was.headHash });
  });
});

function safeDecode<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch {
    return undefined;
  }
}
