import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Fragment, UploadFragmentRequest } from "../gen/vmtree/v1/fragment.ts";
import type { ParentServiceClient } from "../gen/vmtree/v1/link.ts";
import { NodeStore } from "../store/node-store.ts";
import { createLogger } from "../util/log.ts";
import { FragmentArchive } from "./fragment-archive.ts";
import { fragmentIdFor, type Priority } from "./fragment-meta.ts";
import { rateOf, TransferQueue, type TransferJob } from "./transfer-queue.ts";

const NOW = Date.UTC(2026, 11, 4, 8, 0, 0);

let dir: string;
let store: NodeStore;
let archive: FragmentArchive;
let recording: string;
let queues: TransferQueue[];

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-transfer-queue-"));
  recording = path.join(dir, "recording.mp4");
  await writeFile(recording, "a recording");
  await openStore();
  queues = [];
});

afterEach(async () => {
  for (const queue of queues) await queue.close();
  vi.useRealTimers();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function openStore(): Promise<void> {
  store = await NodeStore.open(path.join(dir, "store"));
  archive = new FragmentArchive(store, path.join(dir, "fragments"));
  await archive.open();
}

/** Adds a recording of camera `camera` to the archive; its id sorts as the camera's name does not. */
async function addFragment(camera: string): Promise<string> {
  const { held } = await archive.addOwn(recording, (size, sha256) => {
    const fragment: Fragment = { id: "", site: "kz.ala", camera_id: camera, start_ms: NOW, end_ms: NOW + 60_000, size, sha256, incident: false, file_name: "recording.mp4", added_ms: NOW };
    return { ...fragment, id: fragmentIdFor(fragment) };
  });
  return held.fragment.id;
}

/**
 * A parent that takes each fragment whole at the start of its upload and notes the order
 * the uploads came in. Uploads wait while `hold` is set, the first one included.
 */
function fakeParent() {
  const started: { id: string; priority: string }[] = [];
  let release: () => void = () => undefined;
  let held: Promise<void> | undefined;
  const parent = {
    started,
    /** Makes the next uploads wait at their start until `let go`. */
    hold() {
      held = new Promise<void>((resolve) => (release = resolve));
    },
    letGo() {
      held = undefined;
      release();
    },
    client: {
      uploadFragment() {
        const call = Object.assign(new EventEmitter(), {
          write(request: UploadFragmentRequest) {
            if (request.message?.$case !== "start") throw new Error("the fake parent expects only a start");
            const { fragment, priority } = request.message.value;
            started.push({ id: fragment!.id, priority });
            void Promise.resolve(held).then(() => call.emit("data", { committed: fragment!.size, complete: true }));
            return true;
          },
          end: () => setImmediate(() => call.emit("end")),
          // As grpc-js does: a cancelled call fails with CANCELLED.
          cancel: () => call.emit("error", Object.assign(new Error("1 CANCELLED: Cancelled on client"), { code: 1, details: "Cancelled on client" })),
        });
        return call;
      },
    } as unknown as ParentServiceClient,
  };
  return parent;
}

function newQueue(sent: TransferJob[] = [], concurrency = 1): TransferQueue {
  const queue = new TransferQueue({
    store,
    archive,
    limiter: { take: async () => undefined },
    concurrency,
    log: createLogger("test", "error"),
    onSent: async (job) => void sent.push(job),
    onFailed: async () => undefined,
  });
  queues.push(queue);
  return queue;
}

/** Waits up to 10 s (the store's writes take their time on a loaded machine) for `done`. */
async function until(done: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!done() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(done(), String(done)).toBe(true);
}

describe("rateOf", () => {
  it("rateOf - spans at least a second, and up to now: no rate above the cap at the start, none frozen between chunks", () => {
    const samples = [{ ms: 10_000, bytes: 0 }, { ms: 10_100, bytes: 262_144 }];
    expect(rateOf(samples, 10_500)).toBe(262_144);
    expect(rateOf(samples, 12_000)).toBe(131_072);
    expect(rateOf([{ ms: 10_000, bytes: 0 }], 12_000)).toBe(0);
    expect(rateOf([], 12_000)).toBe(0);
  });
});

describe("TransferQueue", () => {
  it("TransferQueue - incidents start at once, beside a routine upload that holds the one place; requested go before routine, first come first within each (R-7.1)", async () => {
    const parent = fakeParent();
    const sent: TransferJob[] = [];
    const queue = newQueue(sent);
    queue.attach(parent.client);
    const jobs: [string, Priority][] = [
      ["cam-a", "routine"],
      ["cam-b", "routine"],
      ["cam-c", "requested"],
      ["cam-d", "incident"],
      ["cam-e", "routine"],
      ["cam-f", "requested"],
      ["cam-g", "incident"],
    ];
    const ids = new Map<string, string>();
    for (const [camera] of jobs) ids.set(camera, await addFragment(camera));
    // The first job takes the one place of its lane and is held there while the others queue
    // up; the first incident takes the one place of the incidents' lane, and is held too.
    parent.hold();
    for (const [camera, priority] of jobs) {
      await queue.enqueue(ids.get(camera)!, priority, priority === "requested" ? "kz/1" : "");
      vi.advanceTimersByTime(1);
    }
    await until(() => parent.started.length === 2);
    expect(parent.started.map((s) => s.id)).toEqual(["cam-a", "cam-d"].map((camera) => ids.get(camera)));
    parent.letGo();
    await until(() => sent.length === jobs.length);
    const startedOf = (lane: (priority: string) => boolean) => parent.started.filter((s) => lane(s.priority)).map((s) => s.id);
    expect(startedOf((p) => p === "incident")).toEqual(["cam-d", "cam-g"].map((camera) => ids.get(camera)));
    expect(startedOf((p) => p !== "incident")).toEqual(["cam-a", "cam-c", "cam-f", "cam-b", "cam-e"].map((camera) => ids.get(camera)));
    expect(parent.started.filter((s) => s.priority !== "incident").map((s) => s.priority)).toEqual(["routine", "requested", "requested", "routine", "routine"]);
    expect(await queue.list()).toHaveLength(jobs.length);
    expect((await queue.list()).every((view) => view.state === "done")).toBe(true);
  });

  it("TransferQueue - a fragment sent again (asked for once more) is listed once, as it ended last", async () => {
    const parent = fakeParent();
    const sent: TransferJob[] = [];
    const queue = newQueue(sent);
    queue.attach(parent.client);
    const id = await addFragment("cam-1");
    await queue.enqueue(id, "requested", "kz/1");
    await until(() => sent.length === 1);
    await queue.enqueue(id, "requested", "kz/2");
    await until(() => sent.length === 2);
    const views = await queue.list();
    expect(views.map((view) => [view.fragmentId, view.requestId, view.state])).toEqual([[id, "kz/2", "done"]]);
  });

  it("TransferQueue - a waiting job raised to a higher priority moves up to the end of that priority", async () => {
    const parent = fakeParent();
    const sent: TransferJob[] = [];
    const queue = newQueue(sent);
    queue.attach(parent.client);
    const [first, routine, incident, raised] = [await addFragment("cam-1"), await addFragment("cam-2"), await addFragment("cam-3"), await addFragment("cam-4")];
    parent.hold();
    await queue.enqueue(first!, "routine", "");
    await queue.enqueue(routine!, "routine", "");
    await queue.enqueue(incident!, "incident", "");
    await queue.enqueue(raised!, "routine", "");
    // The same fragment found for a request: it goes before the routine job queued before it.
    await queue.enqueue(raised!, "requested", "kz/7");
    // The incident does not wait for the routine upload that holds the other lane's place.
    await until(() => parent.started.length === 2);
    parent.letGo();
    await until(() => sent.length === 4);
    expect(parent.started).toEqual([
      { id: first, priority: "routine" },
      { id: incident, priority: "incident" },
      { id: raised, priority: "requested" },
      { id: routine, priority: "routine" },
    ]);
    expect(sent.find((job) => job.fragmentId === raised)?.requestId).toBe("kz/7");
  });

  it("TransferQueue - jobs queued while the link was down survive a restart and are sent in the same order once it is up", async () => {
    const jobs: [string, Priority][] = [
      ["cam-z", "routine"],
      ["cam-y", "requested"],
      ["cam-x", "routine"],
      ["cam-w", "incident"],
      ["cam-v", "requested"],
      ["cam-u", "routine"],
    ];
    const ids = new Map<string, string>();
    for (const [camera] of jobs) ids.set(camera, await addFragment(camera));
    const before = newQueue();
    for (const [camera, priority] of jobs) {
      await before.enqueue(ids.get(camera)!, priority, priority === "requested" ? "kz/1" : "");
      // Two jobs in each millisecond: their order must not rest on the clock alone.
      if (camera === "cam-y" || camera === "cam-w") vi.advanceTimersByTime(1);
    }
    // The ids sort otherwise than the jobs came, so the store's order is not the answer.
    const stored = [...ids.values()];
    expect([...stored].sort()).not.toEqual(stored);
    await before.close();
    queues = [];
    await store.close();

    await openStore();
    const parent = fakeParent();
    const sent: TransferJob[] = [];
    const after = newQueue(sent);
    expect((await after.list()).map((view) => [view.fragmentId, view.state])).toEqual(
      expect.arrayContaining(stored.map((id) => [id, "waiting"])),
    );
    after.attach(parent.client);
    await until(() => sent.length === jobs.length);
    // The incident has a lane of its own; the others go in priority, then arrival order.
    expect(parent.started.filter((s) => s.priority === "incident").map((s) => s.id)).toEqual([ids.get("cam-w")]);
    expect(parent.started.filter((s) => s.priority !== "incident").map((s) => s.id)).toEqual(["cam-y", "cam-v", "cam-z", "cam-x", "cam-u"].map((camera) => ids.get(camera)));
  });

  it("TransferQueue - a link handed over to a new connection goes on with the job in flight at once", async () => {
    const old = fakeParent();
    const renewed = fakeParent();
    const sent: TransferJob[] = [];
    const queue = newQueue(sent);
    queue.attach(old.client);
    const id = await addFragment("cam-1");
    old.hold();
    await queue.enqueue(id, "incident", "");
    await until(() => old.started.length === 1);
    // What the uplink does on a hand-over: the old session ends and the new one starts at once.
    queue.detach();
    queue.attach(renewed.client);
    await until(() => sent.length === 1);
    expect(renewed.started).toEqual([{ id, priority: "incident" }]);
  });
});
