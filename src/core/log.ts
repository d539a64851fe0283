import pino, { type Level, type Logger } from "pino";

/**
 * The gateway's own log (not the invocation log): JSON lines through pino, one object a line
 * with `level`, `time`, `msg` and whatever context there is (`invocation_id`, `request_id`,
 * `err`). Info and below go to stdout, warn and above to stderr (pino's multistream with dedupe:
 * each line goes to one stream only), so supervisors that split the two keep doing so. On a
 * terminal, pino-pretty renders the same lines readably, in a worker thread (pino's transport).
 */

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function isLogLevel(text: string | undefined): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text ?? "");
}

/** Where the lines go: stdout and stderr by level; pretty-printed when stdout is a terminal. */
function destination(pretty: boolean) {
  if (pretty) {
    return pino.transport({
      targets: [
        { target: "pino-pretty", level: "trace", options: { destination: 1, colorize: true } },
        { target: "pino-pretty", level: "warn", options: { destination: 2, colorize: true } },
      ],
      dedupe: true,
    });
  }
  // Synchronous writes: a line written just before process.exit (a refused start) is not lost.
  return pino.multistream(
    [
      { level: "trace" as Level, stream: pino.destination({ dest: 1, sync: true }) },
      { level: "warn" as Level, stream: pino.destination({ dest: 2, sync: true }) },
    ],
    { dedupe: true },
  );
}

function createLogger(): Logger {
  const fromEnv = process.env.LOG_LEVEL;
  return pino(
    {
      // The environment's level from the first line on; loadConfig validates it and configureLog applies it again.
      level: isLogLevel(fromEnv) ? fromEnv : "info",
      base: { name: "fngw" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination(process.stdout.isTTY === true),
  );
}

/** The one logger every module of the gateway writes to. */
export const log: Logger = createLogger();

/** Applies the configured LOG_LEVEL. */
export function configureLog(level: LogLevel): void {
  log.level = level;
}

/**
 * Writes a line as plain text on stdout, outside the JSON log and whatever LOG_LEVEL is: for the
 * few lines that are for a human to copy (the admin token printed once).
 */
export function printPlain(line: string): void {
  process.stdout.write(`${line}\n`);
}
