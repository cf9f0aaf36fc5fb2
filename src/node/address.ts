import { isIPv4, isIPv6 } from "node:net";
import { VmtreeError } from "../errors.ts";

/**
 * Splits and checks a HOST:PORT listen address; port 0 means "pick one and keep it".
 * `flag` is the flag the address came from, named in the error.
 */
export function checkListenAddress(address: string, flag = "listen"): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || !(port >= 0 && port <= 65535) || !isHost(match[1]!)) {
    throw new VmtreeError("invalid_argument", `expected --${flag} like 127.0.0.1:7443, got \`${address}\``);
  }
  return { host: match[1]!, port };
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * An IP literal or a host name. Dotted digits must be a real IPv4 address: `999.1.1.1`
 * would otherwise pass as a name and fail only when `serve` looks it up, after `join`
 * has spent its token.
 */
function isHost(host: string): boolean {
  if (host.startsWith("[")) return isIPv6(host.slice(1, -1));
  if (/^[\d.]+$/.test(host)) return isIPv4(host);
  return HOST_NAME.test(host);
}

/** Checks an address children are to dial (`--advertise`, `--parent`): HOST:PORT with a real port. */
export function checkDialAddress(address: string, flag: string): { host: string; port: number } {
  const checked = checkListenAddress(address, flag);
  if (checked.port === 0) throw new VmtreeError("invalid_argument", `--${flag} needs a real port, got \`${address}\``);
  return checked;
}
