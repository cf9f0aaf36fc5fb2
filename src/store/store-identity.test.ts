import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { NodeStore } from "./node-store.ts";
import { createNodeStore, openNodeStore, readStoreIdentity, StoreIdentityError, type StoreMismatch } from "./store-identity.ts";

const SITE = "kz.ala.metro-01";
const ID = "0123456789abcdef0123456789abcdef";

let dir: string;
let location: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vmtree-store-identity-"));
  location = path.join(dir, "db");
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(expected: Parameters<typeof openNodeStore>[1]): Promise<StoreMismatch> {
  const error = await openNodeStore(location, expected).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(StoreIdentityError);
  return (error as StoreIdentityError).mismatch;
}

describe("store identity marker", () => {
  it("createNodeStore writes the marker that openNodeStore accepts", async () => {
    const marker = await createNodeStore(location, { site: SITE, epoch: 2, storeId: ID });
    expect(marker).toMatchObject({ site: SITE, epoch: 2, storeId: ID });
    const store = await openNodeStore(location, { site: SITE, epoch: 2, storeId: ID });
    expect(await readStoreIdentity(store)).toEqual(marker);
    await store.close();
  });

  it("createNodeStore refuses a location that already holds a store", async () => {
    await createNodeStore(location, { site: SITE, epoch: 1, storeId: ID });
    const error = await createNodeStore(location, { site: SITE, epoch: 2, storeId: ID }).catch((reason: unknown) => reason);
    expect((error as VmtreeError).code).toBe("already_exists");
  });

  it("refuses a deleted store without creating anything", async () => {
    expect(await refusal({ site: SITE, epoch: 1, storeId: ID })).toEqual({ kind: "missing" });
    expect(existsSync(location)).toBe(false);
  });

  it("refuses a store whose CURRENT file was deleted", async () => {
    await createNodeStore(location, { site: SITE, epoch: 1, storeId: ID });
    await rm(path.join(location, "CURRENT"));
    expect(await refusal({ site: SITE, epoch: 1, storeId: ID })).toEqual({ kind: "missing" });
    expect(await readdir(location)).not.toContain("CURRENT");
  });

  it("refuses an empty store without a marker", async () => {
    await (await NodeStore.open(location)).close();
    expect(await refusal({ site: SITE, epoch: 1, storeId: ID })).toEqual({ kind: "unmarked" });
  });

  it("refuses an unmarked store that holds data", async () => {
    const store = await NodeStore.open(location);
    await store.section<number>("inv-seq").put("x", 1);
    await store.close();
    expect(await refusal({ site: SITE, epoch: 1, storeId: ID })).toEqual({ kind: "unmarked" });
  });

  it("refuses a store of another site, epoch or store id", async () => {
    const found = await createNodeStore(location, { site: SITE, epoch: 1, storeId: ID });
    expect(await refusal({ site: "kz.ala.metro-02", epoch: 1, storeId: ID })).toEqual({ kind: "other", found });
    expect(await refusal({ site: SITE, epoch: 2, storeId: ID })).toEqual({ kind: "other", found });
    expect(await refusal({ site: SITE, epoch: 1, storeId: "f".repeat(32) })).toEqual({ kind: "other", found });
  });

  it("NodeStore.open with createIfMissing false is not_found and leaves no directory", async () => {
    const error = await NodeStore.open(location, { createIfMissing: false }).catch((reason: unknown) => reason);
    expect((error as VmtreeError).code).toBe("not_found");
    expect(existsSync(location)).toBe(false);
  });
});
