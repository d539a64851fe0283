// biome-ignore lint/suspicious/noExplicitAny: the tests' view of a JSON body; any keeps the assertions short
export type Json = Record<string, any>;
