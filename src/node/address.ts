import { VmtreeError } from "../errors.ts";

/** Splits and checks a HOST:PORT listen address; port 0 means "pick one and keep it". */
export function checkListenAddress(address: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new VmtreeError("invalid_argument", `expected --listen like 127.0.0.1:7443, got \`${address}\``);
  }
  return { host: match[1]!, port };
}
