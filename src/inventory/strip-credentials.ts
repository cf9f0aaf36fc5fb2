const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
// A host (RFC 3986 reg-name or IPv4, or an IPv6 literal) and an optional port, then the
// path or the query; or then the end of the URL.
const HOST = String.raw`(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::\d*)?`;
const HOST_THEN_PATH = new RegExp(`^${HOST}[/?]`);
const HOST_THEN_END = new RegExp(`^${HOST}$`);
/**
 * Parameter names that carry a credential, compared in lower case without `-`, `_` and
 * `.`: exact names, and names that contain a word only credentials use (`api_key`,
 * `X-Auth-Token`, `access_key`, `passwd`, `client_secret`...).
 */
const CREDENTIAL_NAMES: ReadonlySet<string> = new Set(["user", "username", "login", "loginuse", "pass", "pas", "pw", "psw", "pwd", "cred", "key", "sig", "signature"]);
const CREDENTIAL_WORDS = /passw|passphrase|loginpas|secret|token|auth|apikey|accesskey|credential|session/;

function isCredentialName(name: string): boolean {
  const plain = name.toLowerCase().replace(/[-_.]/g, "");
  return CREDENTIAL_NAMES.has(plain) || CREDENTIAL_WORDS.test(plain);
}

/**
 * Returns `url` without credentials: the userinfo (`user:password@`), and the query
 * parameters (`?password=…`) and path parameters (`;password=…`) whose names carry a
 * credential (see {@link isCredentialName}; any case). A URL without credentials comes
 * back unchanged, character for character.
 *
 * Passwords are often not percent-encoded (`rtsp://service:S3rv;ce#2020@10.28.192.80:554/...`
 * is typical) and a WHATWG `URL` would end the authority at that `#`, so the rules are
 * textual. Where the userinfo ends, after `scheme://`:
 * 1. At the last `@` that is followed by a host, an optional port and then `/` or `?` (the
 *    start of the path or query). Passwords may hold `;`, `#`, `?`, `@` and even `/`, so
 *    only the text after an `@` can show where the host is.
 * 2. Otherwise, at the last `@` followed by a host, an optional port and the end of the URL,
 *    when it stands before any `?` and a `user:` precedes the first `/`: that is a password
 *    with `/` in it (`rtsp://admin:pa/ss@10.0.0.1`), not a path like `http://cam/users/@me`.
 * 3. Otherwise (the host is malformed), at the last `@` before the first `/`.
 * 4. Otherwise there is no userinfo.
 *
 * Parameter values may contain `@` and `/` and so look like a host, while passwords may
 * contain `?` and so look like a query: credential parameters are removed before the
 * userinfo and again after it.
 *
 * Ambiguous text is resolved towards removing more: rule 1 cannot tell a password `12/34`
 * from a credential-free path holding `@host/`, so `rtsp://cam/a@b/c` becomes `rtsp://b/c`;
 * a mangled URL is better than a leaked password. Known leak: a parameter value with an
 * unencoded `&`, which is cut there. Everything after `?` counts as the query, `#` included.
 */
export function stripCredentials(url: string): string {
  const scheme = SCHEME.exec(url)?.[0] ?? "";
  const rest = withoutCredentialParams(url.slice(scheme.length));
  return scheme + withoutInlineCredentials(withoutPathCredentials(withoutCredentialParams(rest.slice(userinfoLength(rest)))));
}

/**
 * What the structured rules cannot see: `name=value` pairs anywhere (in the fragment,
 * after `;` in the query, in path-style URLs like `/user=admin_password=x_channel=1.sdp`)
 * lose their value, and a path segment named like a credential loses the segment after it
 * (`/password/x`).
 */
function withoutInlineCredentials(rest: string): string {
  const pairs = rest.replace(/(^|[^A-Za-z0-9])([A-Za-z][A-Za-z0-9.-]*)=([^&;/?#_]*)/g, (pair: string, before: string, name: string) =>
    isCredentialName(decodedName(name)) ? `${before}${name}=` : pair,
  );
  const pathEnd = pairs.search(/[?#]/);
  const path = pathEnd === -1 ? pairs : pairs.slice(0, pathEnd);
  // The first segment is the host.
  const segments = path.split("/");
  for (let i = 1; i < segments.length - 1; i++) if (isCredentialName(decodedName(segments[i]!))) segments[i + 1] = "";
  return segments.join("/") + pairs.slice(path.length);
}

// `;name=value` parameters in the path (RTSP servers accept them); the query is already clean.
function withoutPathCredentials(rest: string): string {
  const question = rest.indexOf("?");
  const path = question === -1 ? rest : rest.slice(0, question);
  const kept = path.replace(/;([^;/?=]*)=[^;/?]*/g, (param: string, name: string) => (isCredentialName(decodedName(name)) ? "" : param));
  return kept === path ? rest : kept + rest.slice(path.length);
}

/** Whether `stripCredentials` would change `url`, by the same rules. */
export function hasCredentials(url: string): boolean {
  return stripCredentials(url) !== url;
}

// Length of the userinfo with its final `@`, or 0 when there is none.
function userinfoLength(rest: string): number {
  const ats = [...rest.matchAll(/@/g)].map((match) => match.index).reverse();
  const beforeHost = ats.find((at) => HOST_THEN_PATH.test(rest.slice(at + 1)));
  if (beforeHost !== undefined) return beforeHost + 1;
  const slash = rest.indexOf("/");
  const question = rest.indexOf("?");
  const userFirst = (slash === -1 ? rest : rest.slice(0, slash)).includes(":");
  const beforeEnd = ats.find((at) => (question === -1 || at < question) && HOST_THEN_END.test(rest.slice(at + 1)));
  if (userFirst && beforeEnd !== undefined) return beforeEnd + 1;
  return (slash === -1 ? rest : rest.slice(0, slash)).lastIndexOf("@") + 1;
}

function withoutCredentialParams(rest: string): string {
  const question = rest.indexOf("?");
  if (question === -1) return rest;
  const params = rest.slice(question + 1).split("&");
  const kept = params.filter((param) => !isCredentialName(decodedName(param.split("=", 1)[0] ?? "")));
  if (kept.length === params.length) return rest;
  const base = rest.slice(0, question);
  return kept.length === 0 ? base : `${base}?${kept.join("&")}`;
}

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll("+", " "));
  } catch {
    // A name with a malformed escape is compared as written; no credential name has a `%`.
    return name;
  }
}
