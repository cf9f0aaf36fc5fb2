import { VmtreeError } from "../errors.ts";

/**
 * Splits and checks a HOST:PORT listen address; port 0 means "pick one and keep it".
 * `flag` is the flag the address came from, named in the error.
 */
export function checkListenAddress(address: string, flag = "listen"): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new VmtreeError("invalid_argument", `expected --${flag} like 127.0.0.1:7443, got \`${address}\``);
  }
  return { host: match[1]!, port };
}

/** Checks an address children are to dial (`--advertise`, `--parent`): HOST:PORT with a real port. */
export function checkDialAddress(address: string, flag: string): { host: string; port: number } {
  const checked = checkListenAddress(address, flag);
  if (checked.port === 0) throw new VmtreeError("invalid_argument", `--${flag} needs a real port, got \`${address}\``);
  return checked;
}
