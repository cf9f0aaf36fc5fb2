#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so that `npx vmtree` works right
// after `npm install` with no build step.
import { register } from "tsx/esm/api";

register();
// Output piped into `head` and the like: the reader leaving is not an error of the command.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
