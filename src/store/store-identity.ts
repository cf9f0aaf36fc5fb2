import { randomBytes } from "node:crypto";
import { VmtreeError } from "../errors.ts";
import { NodeStore } from "./node-store.ts";

/**
 * The identity marker every node's store holds from the moment `init` or `join`
 * created it: whose store it is (site and epoch) and a random id of this one store.
 * `node.json` holds the same id. A store that lost its marker, or holds another one,
 * is not the store this node's sequences and checkpoints were counted in.
 */
export interface StoreIdentity {
  site: string;
  epoch: number;
  storeId: string;
  createdAt: string;
}

/** What the node's config says its store must be. */
export interface ExpectedStore {
  site: string;
  epoch: number;
  storeId: string;
}

const SECTION = "store-meta";
const KEY = "identity";

/** A new random store id: 16 bytes, hex. */
export function newStoreId(): string {
  return randomBytes(16).toString("hex");
}

function markerSection(store: NodeStore) {
  return store.section<StoreIdentity>(SECTION);
}

/** Reads the marker; undefined when the store holds none. */
export async function readStoreIdentity(store: NodeStore): Promise<StoreIdentity | undefined> {
  return markerSection(store).get(KEY);
}

/** Writes the marker (durably). */
export async function writeStoreIdentity(store: NodeStore, identity: StoreIdentity): Promise<void> {
  await store.db.batch([{ type: "put", sublevel: markerSection(store), key: KEY, value: identity }], { sync: true });
}

/**
 * Creates a node's store in `location` with its marker, in one step: refuses
 * (`already_exists`) when a store is already there, so that `init` and `join` never
 * adopt another store's data.
 */
export async function createNodeStore(location: string, identity: Omit<StoreIdentity, "createdAt">): Promise<StoreIdentity> {
  const store = await NodeStore.open(location, { createIfMissing: true, errorIfExists: true });
  try {
    const marker = { ...identity, createdAt: new Date().toISOString() };
    await writeStoreIdentity(store, marker);
    return marker;
  } finally {
    await store.close();
  }
}

/** Why a store was refused, for the caller to word what to do. */
export type StoreMismatch =
  | { kind: "missing" }
  | { kind: "unmarked" }
  | { kind: "other"; found: StoreIdentity };

/** Thrown by {@link openNodeStore}: the store is not the one the node's config describes. */
export class StoreIdentityError extends Error {
  readonly mismatch: StoreMismatch;

  constructor(mismatch: StoreMismatch) {
    super(`store identity: ${mismatch.kind}`);
    this.mismatch = mismatch;
  }
}

/**
 * Opens a node's existing store and checks its marker against `expected`. Never creates
 * a store. Rejects with {@link StoreIdentityError} when the store is missing or unmarked,
 * or marked for another site, epoch or store id; with a `VmtreeError` from
 * {@link NodeStore.open} otherwise.
 */
export async function openNodeStore(location: string, expected: ExpectedStore): Promise<NodeStore> {
  let store: NodeStore;
  try {
    store = await NodeStore.open(location, { createIfMissing: false });
  } catch (error) {
    if (error instanceof VmtreeError && error.code === "not_found") throw new StoreIdentityError({ kind: "missing" });
    throw error;
  }
  try {
    const found = await readStoreIdentity(store);
    if (found === undefined) throw new StoreIdentityError({ kind: "unmarked" });
    if (found.site !== expected.site || found.epoch !== expected.epoch || found.storeId !== expected.storeId) {
      throw new StoreIdentityError({ kind: "other", found });
    }
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}
