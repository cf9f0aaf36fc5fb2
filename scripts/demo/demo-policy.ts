import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** One request the demo asks a site to decide, and the answer the policy must give. */
export interface ExpectedDecision {
  user: string;
  action: string;
  decision: "allow" | "deny";
  /** The deciding binding; null for the default deny. */
  binding: string | null;
}

/** The camera the demo's requests are about, at the site that decides them. */
export const POLICY_CAMERA = "metro-01-cam-001";

/** What the demo policy must decide at kz.ala.metro-01, one case of each kind. */
export const EXPECTED_DECISIONS: readonly ExpectedDecision[] = [
  { user: "a.nurlanov", action: "view_live", decision: "allow", binding: "ala-duty-live" },
  { user: "e.zhakupova", action: "export_fragment", decision: "allow", binding: "investigations-metro" },
  { user: "b.sadykova", action: "ptz_control", decision: "deny", binding: "no-ptz-b-sadykova" },
  { user: "a.nurlanov", action: "export_fragment", decision: "deny", binding: null },
];

const DAY_MS = 86_400_000;

/**
 * Writes the national node's policy for the demo into `dir`: the shape of
 * examples/policy.yaml, with grants dated from `nowMs` so that the demo decides the same
 * on any day (a grant lasts at most 12 months, R-22).
 */
export async function writeDemoPolicy(dir: string, nowMs: number): Promise<string> {
  const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const file = join(dir, "kz-policy.yaml");
  await writeFile(
    file,
    `# The national node's access policy for the demo (R-6.3, R-21…27).
roles:
  operator: [view_live, view_archive, ptz_control]
  investigator: [view_archive, export_fragment]
groups:
  ala-duty-officers: [a.nurlanov, b.sadykova]
bindings:
  - id: ala-duty-live
    subject: group:ala-duty-officers
    role: operator
    scope: kz.ala
    effect: allow
    valid_from: ${date(nowMs - DAY_MS)}
    valid_until: ${date(nowMs + 180 * DAY_MS)}
  - id: investigations-metro
    subject: user:e.zhakupova
    role: investigator
    scope: kz.ala.metro-01
    effect: allow
    valid_until: ${date(nowMs + 90 * DAY_MS)}
  # A national deny: no region or site can grant it back.
  - id: no-ptz-b-sadykova
    subject: user:b.sadykova
    action: ptz_control
    scope: kz
    effect: deny
`,
  );
  return file;
}
