import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, whatever the current directory. */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");

/** The `vmtree` launcher every node and command runs through. */
export const VMTREE_BIN = resolve(REPO_ROOT, "bin/vmtree.js");

/** Where the demo keeps its data directories, logs and modified inventories; wiped at start. */
export const DEMO_DIR = resolve(REPO_ROOT, "certs/demo");

/** `path` relative to the repository root, for short and copyable output. */
export function shown(path: string): string {
  return relative(REPO_ROOT, path) || ".";
}
