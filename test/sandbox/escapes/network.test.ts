// Escape attempts over the network: the host's ports, its loopback, and local sockets.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attack, externalAddress, greetingServer, observe, outcome, RUNTIMES, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

describe("connecting to the host", () => {
  describe.each(RUNTIMES)("%s", (runtime) => {
    let server: Awaited<ReturnType<typeof greetingServer>>;
    beforeAll(async () => {
      server = await greetingServer();
    });
    afterAll(() => server.close());

    const connect = (host = "127.0.0.1") =>
      attack(
        runtime,
        `
        import socket
        def talk():
            with socket.create_connection(("HOST", PORT), timeout=5) as s:
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        return data.decode()
                    data += chunk
        return {"socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
                "socket6": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()),
                "connect": attempt(talk)}
        `,
        `
        const net = require("node:net");
        const talk = () => new Promise((resolve, reject) => {
          const socket = net.connect(PORT, "HOST");
          let data = "";
          socket.setEncoding("utf8");
          socket.on("data", (chunk) => { data += chunk; });
          socket.on("end", () => resolve(data));
          socket.on("error", reject);
        });
        return { connect: await attemptAsync(talk) };
        `,
      )
        .replaceAll("PORT", String(server.port))
        .replaceAll("HOST", host);

    it("cannot reach the gateway's port with network off: socket() fails with EPERM", async () => {
      const before = server.accepted();
      const seen = await observe(runtime, connect(), { network: false });
      expect(outcome(seen.connect)).toEqual({ ok: false, code: "EPERM" });
      if (runtime === "python") {
        expect(seen.socket).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
        expect(seen.socket6).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
      }
      expect(server.accepted()).toBe(before);
    });

    it("reaches the same server at the host's external address with network on: the flag is what blocks it", async () => {
      const before = server.accepted();
      const seen = await observe(runtime, connect(externalAddress()), { network: true });
      expect(seen.connect).toEqual({ ok: true, value: `${server.greeting}\n` });
      expect(server.accepted()).toBe(before + 1);
    });

    it("cannot reach the host's loopback (the gateway's own port) even with network on: refused", async () => {
      const before = server.accepted();
      const seen = await observe(runtime, connect("127.0.0.1"), { network: true });
      expect(outcome(seen.connect)).toEqual({ ok: false, code: "ECONNREFUSED" });
      expect(server.accepted()).toBe(before);
    });

    it("cannot open an AF_UNIX socket, a datagram socketpair, nor listen, even with network on", async () => {
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `
          import socket
          def listen():
              s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
              try:
                  s.bind(("127.0.0.1", 0))
                  s.listen()
              finally:
                  s.close()
          return {"unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
                  "abstract": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).connect("\\0fngw")),
                  "dgram_pair": attempt(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)),
                  "stream_pair": attempt(lambda: len(socket.socketpair())),
                  "listen": attempt(listen)}
          `,
          `
          const net = require("node:net");
          const unix = await attemptAsync(() => new Promise((resolve, reject) => {
            const socket = net.connect("/tmp/fngw.sock");
            socket.on("connect", () => resolve("connected"));
            socket.on("error", reject);
          }));
          const listen = await attemptAsync(() => new Promise((resolve, reject) => {
            const server = net.createServer();
            server.on("error", reject);
            server.listen(0, "127.0.0.1", () => { server.close(); resolve("listening"); });
          }));
          return { unix, listen };
          `,
        ),
        { network: true },
      );
      expect(outcome(seen.unix)).toEqual({ ok: false, code: "EPERM" });
      expect(outcome(seen.listen)).toEqual({ ok: false, code: "EPERM" });
      if (runtime === "python") {
        expect(outcome(seen.abstract)).toEqual({ ok: false, code: "EPERM" });
        // A datagram pair could send to an abstract name; a stream pair (asyncio's self-pipe) cannot.
        expect(outcome(seen.dgram_pair)).toEqual({ ok: false, code: "EPERM" });
        expect(seen.stream_pair).toEqual({ ok: true, value: 2 });
      }
    });
  });
});
