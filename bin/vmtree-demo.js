#!/usr/bin/env node
// Runs the demo (scripts/demo.ts) through tsx, as bin/vmtree.js runs the CLI: no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../scripts/demo.ts");
process.exitCode = await main();
