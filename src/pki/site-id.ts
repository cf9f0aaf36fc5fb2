import { VmtreeError, type Result } from "../errors.ts";

const SEGMENT = /^[a-z0-9][a-z0-9-]{0,31}$/;
const MAX_DEPTH = 8;

/**
 * Checks a site id against the rule in DESIGN.md: dotted lower-case segments that
 * match `[a-z0-9][a-z0-9-]{0,31}`, at most 8 deep. The error names the rule broken.
 */
export function checkSiteId(id: string): Result<string> {
  const fail = (why: string): Result<string> => ({
    ok: false,
    error: new VmtreeError("invalid_argument", `invalid site id ${JSON.stringify(id)}: ${why}`),
  });
  if (id.length === 0) return fail("it is empty");
  const segments = id.split(".");
  if (segments.length > MAX_DEPTH) return fail(`it has ${segments.length} segments, at most ${MAX_DEPTH} are allowed`);
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      return fail(
        `segment ${JSON.stringify(segment)} must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit`,
      );
    }
  }
  return { ok: true, value: id };
}

/** Like {@link checkSiteId} but throws the error. */
export function assertSiteId(id: string): string {
  const checked = checkSiteId(id);
  if (!checked.ok) throw checked.error;
  return checked.value;
}

/** The parent's id (the id minus its last segment), or undefined for a root. */
export function parentOf(id: string): string | undefined {
  const dot = id.lastIndexOf(".");
  return dot < 0 ? undefined : id.slice(0, dot);
}

/** True when `id` is `ancestor` itself or lies below it. */
export function isInSubtree(id: string, ancestor: string): boolean {
  return id === ancestor || id.startsWith(`${ancestor}.`);
}

/**
 * The DNS name a site's certificates carry in subjectAltName: the segments reversed
 * under `.vmtree`, so that `kz.ala.metro-01` becomes `metro-01.ala.kz.vmtree`. Reversed,
 * a subtree is a DNS suffix, which is what X.509 name constraints can limit.
 */
export function siteDnsName(id: string): string {
  return `${id.split(".").reverse().join(".")}.vmtree`;
}

/** Inverse of {@link siteDnsName}; undefined when the name is not a vmtree site name. */
export function siteFromDnsName(name: string): string | undefined {
  if (!name.endsWith(".vmtree")) return undefined;
  const id = name.slice(0, -".vmtree".length).split(".").reverse().join(".");
  return checkSiteId(id).ok ? id : undefined;
}
