// Runs a Node workload after locking this process down with the real library (through
// koffi), to check the seccomp policy against it: a trapped call kills the process after
// printing {"kind":"forbidden",...,"name":"<syscall>"} on stderr. As root, from the repo:
//   node native/testdata/workloads/locked.mjs native/testdata/workloads/node.mjs
// Environment: SANDBOX_LIB, JAIL (default "/"), NETWORK=1, SANDBOX_UID (default 65001).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..", "..", "..");
const koffi = createRequire(path.join(root, "package.json"))("koffi");
const lib = koffi.load(process.env.SANDBOX_LIB ?? path.join(root, "native", "build", "libsandbox.so"));
const lock = lib.func("int SandboxSeccomp(const char*, int, int, uint32, int, int)");
const uid = Number(process.env.SANDBOX_UID ?? 65001);
const workload = pathToFileURL(path.resolve(process.argv[2])).href;
const start = process.hrtime.bigint();
lock(process.env.JAIL ?? "/", uid, uid, process.env.NETWORK === "1" ? 1 : 0, 2, 0);
process.stderr.write(`SandboxSeccomp: ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(3)} ms\n`);
await import(workload);
