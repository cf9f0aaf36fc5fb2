import { VmtreeError, type Result } from "../errors.ts";
import { checkSiteId } from "./site-id.ts";

/** What a join token carries. Only `secret` is confidential. */
export interface JoinToken {
  /** HOST:PORT of the parent. */
  address: string;
  /** The child site id the token is bound to. */
  site: string;
  /** SHA-256 fingerprint (hex) of the tree's root CA certificate, pinned before trusting the parent. */
  caFingerprint: string;
  secret: string;
  expiresMs: number;
}

const PREFIX = "vmtree1.";

/** Encodes a token as `vmtree1.` followed by base64url JSON: one word, safe to paste. */
export function encodeJoinToken(token: JoinToken): string {
  const body = { a: token.address, s: token.site, f: token.caFingerprint, k: token.secret, e: token.expiresMs };
  return PREFIX + Buffer.from(JSON.stringify(body)).toString("base64url");
}

/** Decodes and checks the shape of a token; says what is wrong without echoing the secret. */
export function decodeJoinToken(text: string): Result<JoinToken> {
  const fail = (why: string): Result<JoinToken> => ({
    ok: false,
    error: new VmtreeError("invalid_argument", `the join token is malformed: ${why}; ask the parent's administrator for a new one with \`vmtree invite\``),
  });
  const trimmed = text.trim();
  if (!trimmed.startsWith(PREFIX)) return fail(`it does not start with ${PREFIX}`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(trimmed.slice(PREFIX.length), "base64url").toString("utf8"));
  } catch {
    return fail("its body is not base64url JSON");
  }
  if (typeof body !== "object" || body === null) return fail("its body is not a JSON object");
  const { a, s, f, k, e } = body as Record<string, unknown>;
  // A host name or IP address only: a token garbled in copying must not send a lookup of junk anywhere.
  if (typeof a !== "string" || !/^([A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(a) || Number(a.slice(a.lastIndexOf(":") + 1)) > 65535) {
    return fail("the parent address is missing or not HOST:PORT");
  }
  if (typeof s !== "string") return fail("the site id is missing");
  const site = checkSiteId(s);
  if (!site.ok) return { ok: false, error: site.error };
  if (typeof f !== "string" || !/^[0-9a-f]{64}$/.test(f)) return fail("the CA fingerprint is not 64 hex digits");
  if (typeof k !== "string" || !/^[A-Za-z0-9_-]{32,128}$/.test(k)) return fail("the secret is missing or malformed");
  if (typeof e !== "number" || !Number.isSafeInteger(e)) return fail("the expiry is missing");
  return { ok: true, value: { address: a, site: s, caFingerprint: f, secret: k, expiresMs: e } };
}
