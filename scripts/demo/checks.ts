import { formatTable } from "./table.ts";

/** The recorded outcome of one check. */
interface Outcome {
  passed: boolean;
  detail: string;
}

/**
 * The demo's pass/fail checks, in the order they were declared. A check never
 * recorded counts as failed ("not reached"), so an aborted run cannot pass.
 */
export class Checks<Name extends string> {
  readonly #titles: Readonly<Record<Name, string>>;
  readonly #outcomes = new Map<Name, Outcome>();

  constructor(titles: Readonly<Record<Name, string>>) {
    this.#titles = titles;
  }

  /** Records the outcome of `name`; a later call replaces an earlier one. */
  record(name: Name, passed: boolean, detail: string): void {
    this.#outcomes.set(name, { passed, detail });
  }

  /** True when every declared check was recorded as passed. */
  get allPassed(): boolean {
    return this.#names().every((name) => this.#outcomes.get(name)?.passed === true);
  }

  /** One aligned line per check: PASS or FAIL, the title, the detail. */
  report(): string[] {
    const rows = this.#names().map((name) => {
      const outcome = this.#outcomes.get(name);
      return [outcome?.passed ? "PASS" : "FAIL", this.#titles[name], outcome?.detail ?? "not reached"];
    });
    return formatTable(["RESULT", "CHECK", "DETAIL"], rows);
  }

  #names(): Name[] {
    return Object.keys(this.#titles) as Name[];
  }
}
