// The `fngw` command: registers the command groups, runs the one asked for, and turns every way
// it can end into one of the documented exit codes.
import fs from "node:fs";
import { Command, CommanderError } from "commander";
import { registerBackupCommand } from "./backup.js";
import { CliError, DEFAULT_URL, EXIT } from "./client.js";
import { registerFunctionCommands } from "./functions.js";
import { registerInvokeCommand } from "./invoke.js";
import { registerJobCommands } from "./jobs.js";
import { registerLogCommands } from "./logs.js";

const EXIT_CODES_HELP = `
Configuration:
  GATEWAY_URL    the gateway (default ${DEFAULT_URL}); --url wins
  GATEWAY_TOKEN  the API token; --token wins

Exit codes:
  0  ok
  1  the request failed (a 4xx/5xx from the API, the invoked function answered non-2xx,
     or a deploy's packages failed to install)
  2  usage error
  3  the gateway is unreachable
  4  unauthorized (missing or wrong token)
`;

function packageVersion(): string {
  const manifest = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return manifest.version;
}

export function buildProgram(): Command {
  const program = new Command("fngw")
    .description("A client of the fngw function gateway's HTTP API")
    .version(packageVersion())
    .option("--url <url>", `the gateway's URL (default: GATEWAY_URL, or ${DEFAULT_URL})`)
    .option("--token <token>", "the API token (default: GATEWAY_TOKEN)")
    .option("--json", "print the API's JSON instead of tables")
    .showHelpAfterError("(fngw --help lists the commands)")
    .addHelpText("after", EXIT_CODES_HELP)
    // Set before the commands are added, so they inherit it: usage errors throw instead of exiting.
    .exitOverride();
  registerFunctionCommands(program);
  registerInvokeCommand(program);
  registerLogCommands(program);
  registerJobCommands(program);
  registerBackupCommand(program);
  return program;
}

export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (error) {
    // Commander has already printed its message (or the help / version asked for).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof CliError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT.failed;
  }
}

// `fngw show x | head`: the reader went away, which is no error of ours; stop quietly.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(EXIT.ok);
  throw error;
});

process.exitCode = await run(process.argv);
