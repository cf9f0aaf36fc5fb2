/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Writes one line per event to stderr: time, level, component, message and fields.
 * Callers never pass keys, tokens or stream credentials; fields are plain facts.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

/** A logger for `component`; `VMTREE_LOG_LEVEL` sets the threshold (default info). */
export function createLogger(component: string, threshold: LogLevel = levelFromEnv()): Logger {
  const write = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < ORDER[threshold]) return;
    const extra = fields ? ` ${JSON.stringify(fields)}` : "";
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} [${component}] ${message}${extra}\n`);
  };
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (name) => createLogger(`${component}/${name}`, threshold),
  };
}

function levelFromEnv(): LogLevel {
  const level = process.env.VMTREE_LOG_LEVEL;
  return level === "debug" || level === "info" || level === "warn" || level === "error" ? level : "info";
}
