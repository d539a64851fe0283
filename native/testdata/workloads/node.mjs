// A representative Node workload for scripts/record-syscalls.sh: what a function may do after
// the lock-down. Modules the prescript loads are imported before the marker; everything below
// it runs as user code would. Set FETCH_URL to an http:// URL to exercise the network.
import fs from "node:fs";

fs.existsSync("/__record_syscalls_start__");

const { Worker } = await import("node:worker_threads");
const crypto = await import("node:crypto");
const zlib = await import("node:zlib");
const os = await import("node:os");
const path = await import("node:path");
const { promisify } = await import("node:util");

const out = {};
out.json = JSON.parse(JSON.stringify({ a: [1, 2.5, "x"] }));
out.sha = crypto.createHash("sha256").update("abc").digest("hex");
out.rand = crypto.randomBytes(8).toString("hex");
out.uuid = crypto.randomUUID();
out.subtle = Buffer.from(await crypto.webcrypto.subtle.digest("SHA-256", new TextEncoder().encode("x"))).length;
out.hmac = crypto.createHmac("sha256", "k").update("v").digest("base64");
out.pbkdf2 = (await promisify(crypto.pbkdf2)("p", "s", 1000, 32, "sha256")).length;
out.gzipSync = zlib.gunzipSync(zlib.gzipSync("x".repeat(10000))).length;
out.gzip = (await promisify(zlib.gunzip)(await promisify(zlib.gzip)("y".repeat(10000)))).length;
out.date = new Date().toISOString() + new Intl.DateTimeFormat("en", { timeZone: "Europe/Paris" }).format(new Date());
out.mod = (await import("data:text/javascript,export default 41 + 1")).default;

out.worker = await new Promise((resolve, reject) => {
  const w = new Worker(
    "const { parentPort } = require('node:worker_threads'); parentPort.postMessage(process.getuid ? process.getuid() : -1);",
    { eval: true },
  );
  w.once("message", resolve);
  w.once("error", reject);
});

const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "wl-"));
const file = path.join(dir, "f.txt");
await fs.promises.writeFile(file, "data");
await fs.promises.appendFile(file, "more");
await fs.promises.rename(file, file + ".2");
await fs.promises.chmod(file + ".2", 0o600);
out.stat = (await fs.promises.stat(file + ".2")).size;
out.read = await fs.promises.readFile(file + ".2", "utf8");
out.list = await fs.promises.readdir(dir);
const fh = await fs.promises.open(file + ".2", "r+");
await fh.truncate(2);
await fh.close();
out.sync = fs.readFileSync(file + ".2", "utf8");
await fs.promises.rm(dir, { recursive: true });

await new Promise((resolve) => setTimeout(resolve, 10));
await new Promise((resolve) => setImmediate(resolve));
await new Promise((resolve) => {
  let n = 0;
  const t = setInterval(() => {
    if (++n === 3) {
      clearInterval(t);
      resolve();
    }
  }, 1);
});
out.ids = [process.pid, process.ppid, process.getuid(), process.getgid(), process.cwd()];
try {
  out.mem = process.memoryUsage().heapUsed > 0; // reads /proc/self/stat: absent in a jail
} catch (err) {
  out.mem = err.code;
}
out.hr = process.hrtime.bigint() > 0n;
out.cpus = os.cpus().length;
out.isatty = process.stdout.isTTY ?? false;

if (process.env.FETCH_URL) {
  try {
    const res = await fetch(process.env.FETCH_URL);
    out.fetch = (await res.text()).length;
  } catch (err) {
    out.fetch = err.cause?.code ?? String(err); // EPERM without network
  }
}

process.stdout.write(JSON.stringify(out) + "\n");
