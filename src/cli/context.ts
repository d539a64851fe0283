// What every command gets from the global flags, and the argument parsers the commands share.
import { type Command, InvalidArgumentError } from "commander";
import { connection, GatewayClient } from "./client.js";

export interface GlobalFlags {
  url?: string;
  token?: string;
  json?: boolean;
}

export interface Context {
  client: GatewayClient;
  /** --json: print the API's JSON instead of tables. */
  json: boolean;
}

/** The client and output mode of the command being run (global flags may stand before or after it). */
export function contextOf(command: Command): Context {
  const flags = command.optsWithGlobals<GlobalFlags>();
  return { client: new GatewayClient(connection(flags)), json: flags.json === true };
}

/** A commander argument parser for a positive integer (a bad value is a usage error). */
export function positiveInteger(value: string): number {
  if (!/^[1-9]\d{0,15}$/.test(value)) throw new InvalidArgumentError("must be a positive integer");
  return Number(value);
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
