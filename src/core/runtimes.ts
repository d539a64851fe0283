/** The languages a function can be written in. */
export const RUNTIMES = ["python", "node"] as const;
export type Runtime = (typeof RUNTIMES)[number];
