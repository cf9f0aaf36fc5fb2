/** Operator-facing output: numbered step headings with the time since start, indented lines. */
export interface Output {
  /** A blank line, then `[number/total] title  (t = 1.2 s)`. */
  step(number: number, title: string): void;
  /** One line under the current step; no argument for a blank line. */
  line(text?: string): void;
  /** Lines under the current step, each indented by `indent` more spaces. */
  lines(texts: readonly string[], indent?: number): void;
  /** A problem, on stderr. */
  warn(text: string): void;
  /** Milliseconds since the demo started. */
  elapsedMs(): number;
}

/** Formats milliseconds as seconds with one decimal: `12.3 s`. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Creates the demo's output on stdout (warnings on stderr), timed from `startedMs` (`performance.now()`). */
export function createOutput(totalSteps: number, startedMs: number): Output {
  const elapsedMs = () => performance.now() - startedMs;
  const line = (text = "") => console.log(text === "" ? "" : `  ${text}`);
  return {
    step(number, title) {
      console.log(`\n[${number}/${totalSteps}] ${title}  (t = ${seconds(elapsedMs())})`);
    },
    line,
    lines(texts, indent = 0) {
      for (const text of texts) line(`${" ".repeat(indent)}${text}`);
    },
    warn(text) {
      console.error(`  ! ${text}`);
    },
    elapsedMs,
  };
}
