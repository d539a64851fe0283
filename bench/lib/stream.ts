import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { InterpreterKind } from "../../src/core/runtimes.js";

/**
 * The `stream` case: a function streams its body in 64 KiB chunks as fast as it may, to a client
 * that reads at full speed (throughput, and how much the gateway's resident memory grows while
 * the body passes through it), then to a client that reads 1 MB/s (the function is paced: the run
 * lasts about as long as the client's reading, and the gateway holds little of the body meanwhile).
 *
 * The slow reader is a Python client with a 64 KiB receive buffer (SO_RCVBUF): over loopback the
 * kernel would otherwise let the receive window grow to tcp_rmem's maximum (32 MiB here), and a
 * body of a few megabytes would sit in kernel buffers while the function had long ended; a remote
 * client's window is bounded by what it reads. The gateway's own send buffer (up to tcp_wmem's
 * maximum, 4 MiB) still holds some of the body outside the gateway's memory.
 */

export const CHUNK_BYTES = 64 * 1024;

/** Streams `?bytes=N` bytes in 64 KiB chunks, each written as soon as the last one was taken. */
export const STREAM_FUNCTIONS: Record<InterpreterKind, string> = {
  node: `export default (request) => {
  const total = Number(new URL(request.url).searchParams.get("bytes"));
  const chunk = new Uint8Array(${CHUNK_BYTES}).fill(120);
  let sent = 0;
  return new Response(new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.length;
    },
  }, { highWaterMark: 0 }), { headers: { "content-type": "application/octet-stream" } });
};
`,
  python: `def handler(request):
    total = int(request.query["bytes"])
    chunk = b"x" * ${CHUNK_BYTES}
    def chunks():
        for _ in range(total // ${CHUNK_BYTES}):
            yield chunk
    return chunks(), 200, {"content-type": "application/octet-stream"}
`,
};

export interface StreamFigures {
  runtime: InterpreterKind;
  /** "full": the client reads as fast as it can; "1MB/s": it reads a megabyte a second. */
  reader: "full" | "1MB/s";
  bytes: number;
  /** From the request to the body's last byte at the client. */
  wallMs: number;
  mbPerSecond: number;
  /** The gateway's VmRSS: before the request, and its highest sample (every 20 ms) until the body ended. */
  rssBeforeBytes: number;
  rssPeakBytes: number;
  rssGrowthBytes: number;
  /** CPU time the gateway spent (user + system) from the request to the body's end. */
  gatewayCpuMs: number;
  /** The invocation's own duration (the row's): with a paced function, about the client's reading time. */
  runMs: number | null;
  status: number;
  invocationId: string | null;
}

/** User + system CPU time of `pid` so far, in ms (/proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssOf(pid: number): number {
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb ?? 0) * 1024;
}

/** What a reader reports of one body. */
interface Read {
  bytes: number;
  status: number;
  invocationId: string | null;
}

/**
 * Requests `url` and reads its body at full speed (`bytesPerSecond` null) or at that rate (the
 * Python client, `python` its binary), sampling the gateway's (`pid`) memory and CPU meanwhile.
 */
export async function readStream(
  url: string,
  token: string,
  pid: number,
  pace: { bytesPerSecond: number; python: string } | null,
): Promise<Omit<StreamFigures, "runtime" | "reader" | "runMs">> {
  const rssBeforeBytes = rssOf(pid);
  const cpuBefore = cpuMsOf(pid);
  let rssPeakBytes = rssBeforeBytes;
  const sampler = setInterval(() => {
    rssPeakBytes = Math.max(rssPeakBytes, rssOf(pid));
  }, 20);
  const started = performance.now();
  let read: Read;
  try {
    read = pace === null ? await readFast(url, token) : await readPaced(url, token, pace.bytesPerSecond, pace.python);
  } finally {
    clearInterval(sampler);
  }
  rssPeakBytes = Math.max(rssPeakBytes, rssOf(pid));
  const wallMs = performance.now() - started;
  return {
    ...read,
    wallMs,
    mbPerSecond: read.bytes / 1e6 / (wallMs / 1000),
    rssBeforeBytes,
    rssPeakBytes,
    rssGrowthBytes: rssPeakBytes - rssBeforeBytes,
    gatewayCpuMs: cpuMsOf(pid) - cpuBefore,
  };
}

function readFast(url: string, token: string): Promise<Read> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const request = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (response) => {
      response.on("data", (chunk: Buffer) => (bytes += chunk.length));
      response.on("end", () =>
        resolve({
          bytes,
          status: response.statusCode ?? 0,
          invocationId: (response.headers["x-invocation-id"] as string | undefined) ?? null,
        }),
      );
      response.on("error", reject);
    });
    request.on("error", reject);
  });
}

/** Reads 64 KiB at a time, each read after its share of a second; prints what it read as JSON. */
const PACED_CLIENT = `
import http.client, json, socket, sys, time, urllib.parse
url, token, rate = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], float(sys.argv[3])
class Connection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.connect((self.host, self.port))
connection = Connection(url.hostname, url.port)
connection.request("GET", url.path + "?" + url.query, headers={"authorization": "Bearer " + token})
response = connection.getresponse()
total, started = 0, time.monotonic()
while chunk := response.read(65536):
    total += len(chunk)
    wait = started + total / rate - time.monotonic()
    if wait > 0:
        time.sleep(wait)
print(json.dumps({"bytes": total, "status": response.status, "invocationId": response.getheader("x-invocation-id")}))
`;

function readPaced(url: string, token: string, bytesPerSecond: number, python: string): Promise<Read> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ["-c", PACED_CLIENT, url, token, String(bytesPerSecond)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out) as Read) : reject(new Error(`the paced client exited with ${code}`)),
    );
  });
}
