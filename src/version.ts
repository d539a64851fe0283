import { createRequire } from "node:module";

/** The gateway's version, as package.json states it. */
export const GATEWAY_VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
