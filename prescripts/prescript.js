// The Node.js prescript. src/sandbox/prescript.ts renders it once at start-up, replacing
// each placeholder in double braces with a literal; node reads it from stdin (`node -`).
// The gateway may start it before any invocation is known.
//
// Fd 3 carries, in order: one line of lock-down parameters, written by the gateway
// (jail, uid, gid, flags, max threads, listener fd); then, read only after the lock, one JSON line with
// the request envelope, the function's environment and its code (base64), then the
// request body. Fd 4 carries the result out (JSON lines: a whole answer with its body bytes,
// or a streamed one's head, chunks and end); stdout and stderr are the invocation's log.
"use strict";

// One closure holds everything: top-level bindings of a script are visible to later
// scripts in the same realm, and the stdin script's CommonJS globals (require,
// module, ...) would hand user code the prescript's require.
(function prescript(nodeRequire) {
  for (const name of ["require", "module", "exports", "__filename", "__dirname"]) delete globalThis[name];
  const fs = nodeRequire("node:fs");
  // Exits without running 'exit' listeners user code may have added (Node's own process.exit ends in it).
  const reallyExit = process.reallyExit ?? ((code) => process.exit(code));
  const lockdown = loadLibrary(nodeRequire);
  // Warm up while no invocation is known: what loads lazily costs more than the rest of the
  // prescript (the Web Request/Response classes, the ES module loader, the stdio streams).
  void [Request, Response, Headers, process.stdout, process.stderr];
  import("data:text/javascript,export default 0").then(() => {
    const received = lockDown(nodeRequire, fs, lockdown);
    runFunction(nodeRequire, fs, received);
  });

  function loadLibrary(require) {
    const koffi = require({{KOFFI_PATH}});
    const library = koffi.load({{LIB_PATH}});
    library.func({{READY_SIGNATURE}})(); // waits for the library's runtime now, not in the lock-down call
    return library.func(
      {{LOCKDOWN_SIGNATURE}},
    );
  }

  /** Waits for an invocation and locks down; returns what was read past the parameters. */
  function lockDown(require, fs, lockdown) {
    // The first line is the gateway's own (no byte of it comes from a function); an empty
    // read means the gateway let this interpreter go.
    let received = Buffer.alloc(0);
    const chunk = Buffer.allocUnsafe(1 << 16);
    while (!received.includes(10)) {
      const n = fs.readSync(3, chunk, 0, chunk.length, null);
      if (n === 0) reallyExit(0);
      received = Buffer.concat([received, chunk.subarray(0, n)]);
    }
    const newline = received.indexOf(10);
    const [jail, uid, gid, flags, maxThreads, listener] = received.subarray(0, newline).toString("utf8").split("\0");
    if (lockdown(jail, Number(uid), Number(gid), Number(flags), 4, Number(maxThreads), Number(listener)) !== 0) {
      reallyExit(125); // unreachable: the library ends the process itself on any failure
    }
    fs.writeSync(4, '{"kind":"locked"}\n'); // before any byte of the function: see PROTOCOL.md
    // Drop every handle user code could use to reach the library or the prescript.
    for (const key of Object.keys(require.cache)) delete require.cache[key];
    relocate(require);
    return received.subarray(newline + 1);
  }

  /**
   * Names the interpreter as a neutral install would (/usr/bin/node): the host's prefix
   * (an nvm under /root, say) is not in the jail, and nothing a function reads should name
   * it. Node needs no file of its own after the lock: its built-in modules are in the binary.
   */
  function relocate(require) {
    const path = require("node:path");
    const hostPrefix = path.dirname(path.dirname(process.execPath));
    const moved = (p) => (p === hostPrefix || p.startsWith(hostPrefix + "/") ? "/usr" + p.slice(hostPrefix.length) : p);
    const Module = require("node:module");
    Module.globalPaths.splice(0, Module.globalPaths.length, ...Module.globalPaths.map(moved));
    process.execPath = "/usr/bin/node";
    process.argv[0] = process.execPath;
  }

  // Locked down: chroot, unprivileged uid, no_new_privs and seccomp hold from here on.
  function runFunction(nodeRequire, fs, received) {
    const vm = nodeRequire("node:vm");
    const { createRequire } = nodeRequire("node:module");

    const FILENAME = "function.js";

    // One read buffer for the instance's life: a warm instance reads every invocation into it (its
    // bytes are copied out), rather than allocating a megabyte outside the heap each time.
    const chunk = Buffer.allocUnsafe(1 << 20);

    /** One invocation from fd 3: its JSON line and exactly body_length bytes (what follows stays in `received`). */
    function readInvocation() {
      const more = () => {
        const n = fs.readSync(3, chunk, 0, chunk.length, null);
        if (n === 0) reallyExit(0); // the gateway let this instance go
        received = Buffer.concat([received, chunk.subarray(0, n)]);
      };
      while (!received.includes(10)) more();
      const newline = received.indexOf(10);
      const envelope = JSON.parse(received.subarray(0, newline).toString("utf8"));
      received = received.subarray(newline + 1);
      while (received.length < envelope.body_length) more();
      const body = Buffer.from(received.subarray(0, envelope.body_length));
      received = received.subarray(envelope.body_length);
      return { envelope, body };
    }

    /** Warm instances: marks the end of this invocation's stdout, stderr and result (PROTOCOL.md). */
    function endInvocation(nonce) {
      return new Promise((resolve) => {
        const streams = [stdout, stderr].filter((stream) => stream.writableLength > 0);
        let pending = streams.length;
        const mark = () => {
          try {
            const marker = Buffer.from(`\0fngw-end:${nonce}\0`);
            writeAll(1, marker);
            writeAll(2, marker);
            writeAll(4, Buffer.from(`{"kind":"end","nonce":"${nonce}"}\n`));
          } catch {
            reallyExit(1); // user code closed a channel: the instance cannot report, so it ends
          }
          resolve();
        };
        if (pending === 0) return mark();
        for (const stream of streams) stream.write("", () => --pending === 0 && mark());
      });
    }

    function writeAll(fd, data) {
      for (let offset = 0; offset < data.length; ) offset += fs.writeSync(fd, data, offset);
    }

    // Writes wait while the gateway's buffer for this answer is full: a slow client paces the function.
    function send(frame, body = Buffer.alloc(0)) {
      writeAll(4, Buffer.concat([Buffer.from(JSON.stringify(frame) + "\n"), body]));
    }

    /** A chunk of a streamed body: its frame line and its bytes in one writev, without copying them. */
    function sendChunk(bytes) {
      if (bytes.length === 0) return;
      const line = Buffer.from(`{"kind":"chunk","length":${bytes.length}}\n`);
      const written = fs.writevSync(4, [line, bytes]);
      if (written < line.length + bytes.length) writeAll(4, Buffer.concat([line, bytes]).subarray(written));
    }

    /** Exits once stdout and stderr have flushed what user code wrote (large writes to a socket are queued). */
    function exitNow(code) {
      const streams = [process.stdout, process.stderr].filter((stream) => stream.writableLength > 0);
      let pending = streams.length;
      if (pending === 0) reallyExit(code); // skips user 'exit' listeners
      for (const stream of streams) {
        stream.write("", () => {
          if (--pending === 0) reallyExit(code);
        });
      }
    }

    function cleanStack(error) {
      const text = error instanceof Error && typeof error.stack === "string" ? error.stack : String(error);
      return text
        .split("\n")
        .filter((line) => !/^\s+at .*(\[stdin\]|node:internal)/.test(line))
        .join("\n");
    }

    function fail(error) {
      process.stderr.write(cleanStack(error) + "\n");
      const message = error instanceof Error ? `${error.name}: ${error.message}` : `uncaught ${String(error)}`;
      send({ kind: "error", message });
      exitNow(1);
    }

    function isModuleSyntaxError(error) {
      // The same signals Node's own --experimental-detect-module relies on.
      return (
        error instanceof SyntaxError &&
        /Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module|await is only valid in async functions and the top level bodies of modules/.test(
          error.message,
        )
      );
    }

    /**
     * Loads the user's code; returns its exports (CommonJS `module.exports` or the ES module
     * namespace). TypeScript arrives compiled, with an inline source map: it is loaded from a file
     * in the invocation's /tmp, through Node's own loaders, so that stack traces name the .ts lines.
     */
    async function load(source, packages, run, typescript) {
      let wrapper;
      try {
        wrapper = vm.compileFunction(source, ["exports", "require", "module", "__filename", "__dirname"], {
          filename: FILENAME,
        });
      } catch (error) {
        if (!isModuleSyntaxError(error)) throw error;
        if (packages || typescript) {
          // A data: URL has no directory, so bare specifiers cannot resolve from it: the module
          // is loaded from the invocation's own /tmp instead, and resolution walks up to
          // /node_modules, the jail's link to /packages/node_modules.
          fs.writeFileSync("/tmp/function.mjs", source, { mode: 0o600 });
          return import(`file:///tmp/function.mjs?${run}`); // a warm script runs anew each time
        }
        const url = "data:text/javascript;base64," + Buffer.from(`${source}\n//# sourceURL=function.mjs\n//${run}\n`).toString("base64");
        return import(url);
      }
      if (typescript) {
        const require = createRequire("/tmp/");
        fs.writeFileSync("/tmp/function.cjs", source, { mode: 0o600 });
        delete require.cache["/tmp/function.cjs"]; // a warm script runs anew each time
        return require("/tmp/function.cjs");
      }
      const module = { exports: {} };
      wrapper.call(module.exports, module.exports, createRequire("/" + FILENAME), module, "/" + FILENAME, "/");
      return module.exports;
    }

    function findHandler(exported) {
      if (typeof exported === "function") return exported;
      if (exported === null || typeof exported !== "object") return null;
      for (const name of ["default", "handler"]) {
        if (typeof exported[name] === "function") return exported[name];
      }
      return null;
    }

    function buildRequest(envelope, body) {
      const headers = new Headers();
      for (const [name, value] of envelope.headers) {
        try {
          headers.append(name, value);
        } catch {
          // A header value a Web Headers object refuses is left out of the Request.
        }
      }
      const hasBody = !["GET", "HEAD"].includes(envelope.method);
      const request = new Request(envelope.url, {
        method: envelope.method,
        headers,
        body: hasBody ? body : undefined,
        duplex: "half",
      });
      Object.defineProperty(request, "path", { value: envelope.path, enumerable: true });
      return request;
    }

    /** Sends the handler's answer: whole, or streamed as it is written (PROTOCOL.md). */
    async function answer(result) {
      if (result instanceof Response) return answerResponse(result);
      if (isStream(result)) return streamItems(200, [], result);
      const { status, headers, body } = encode(result);
      send({ kind: "response", status, headers, body_length: body.length }, body);
    }

    /**
     * A body ready at once (within one turn of the event loop) and no larger goes whole, with its
     * length; a larger one is streamed, so that what the function holds stays bounded and a slow
     * client paces it.
     */
    const WHOLE_BODY_MAX = 1 << 20;
    const BLOCKED = Symbol("blocked");

    /** A Response: whole when its body is ready at once, else its head now and its body as it comes. */
    async function answerResponse(response) {
      const head = { kind: "response", status: response.status, headers: [...response.headers] };
      if (response.body === null) return send({ ...head, body_length: 0 });
      const reader = response.body.getReader();
      const ready = [];
      let size = 0;
      let pending = reader.read();
      while (size <= WHOLE_BODY_MAX) {
        const next = await Promise.race([pending, new Promise((resolve) => setImmediate(resolve, BLOCKED))]);
        if (next === BLOCKED) break;
        if (next.done) return send({ ...head, body_length: size }, Buffer.concat(ready, size));
        const bytes = chunkBytes(next.value);
        ready.push(bytes);
        size += bytes.length;
        pending = reader.read();
      }
      send({ ...head, streamed: true });
      for (const bytes of ready) sendChunk(bytes);
      for (let next = await pending; !next.done; next = await reader.read()) sendChunk(chunkBytes(next.value));
      send({ kind: "body_end" });
    }

    function chunkBytes(value) {
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      throw new TypeError(`a Response body's chunks must be Uint8Array, not ${typeof value}`);
    }

    /** What streams when a handler returns it: an async iterable (a ReadableStream, an async generator) or a generator. */
    function isStream(value) {
      return (
        value !== null &&
        typeof value === "object" &&
        (typeof value[Symbol.asyncIterator] === "function" || Object.prototype.toString.call(value) === "[object Generator]")
      );
    }

    /**
     * Streams what an iterable yields: strings (UTF-8), bytes, or objects, each one Server-Sent
     * Event. The head goes with the first item, whose kind sets the content type.
     */
    async function streamItems(status, headers, items) {
      let contentType = headers.find(([name]) => name.toLowerCase() === "content-type")?.[1] ?? null;
      let started = false;
      const start = (type) => {
        if (started) return;
        if (contentType === null && type !== null) {
          contentType = type;
          headers = [...headers, ["content-type", type]];
        }
        send({ kind: "response", status, headers, streamed: true });
        started = true;
      };
      for await (const item of items) {
        if (typeof item === "string") {
          start("text/plain; charset=utf-8");
          sendChunk(Buffer.from(item));
        } else if (item instanceof ArrayBuffer || ArrayBuffer.isView(item)) {
          start("application/octet-stream");
          sendChunk(item instanceof ArrayBuffer ? Buffer.from(item) : Buffer.from(item.buffer, item.byteOffset, item.byteLength));
        } else if (item !== null && typeof item === "object") {
          start("text/event-stream");
          if (!/^text\/event-stream\b/i.test(contentType)) {
            throw new TypeError(`an object streams as an event only under content-type text/event-stream, not ${contentType}`);
          }
          sendChunk(Buffer.from(serverSentEvent(item)));
        } else {
          throw new TypeError(`a streamed item must be a string, bytes or an event object, not ${item === null ? "null" : typeof item}`);
        }
      }
      start(null);
      send({ kind: "body_end" });
    }

    const EVENT_FIELDS = new Set(["comment", "event", "id", "retry", "data"]);
    const lines = (text) => text.split(/\r\n|\r|\n/);

    /** One Server-Sent Event: `data` (a string as is, anything else as JSON), `event`, `id`, `retry`, `comment`. */
    function serverSentEvent(item) {
      const unknown = Object.keys(item).filter((key) => !EVENT_FIELDS.has(key));
      if (unknown.length > 0) throw new TypeError(`an event's fields are comment, event, id, retry and data, not ${unknown.join(", ")}`);
      const out = [];
      if (item.comment != null) for (const line of lines(String(item.comment))) out.push(`: ${line}`);
      for (const field of ["event", "id"]) {
        if (item[field] == null) continue;
        const value = String(item[field]);
        if (/[\r\n\0]/.test(value)) throw new TypeError(`an event's ${field} cannot hold a line break or NUL`);
        out.push(`${field}: ${value}`);
      }
      if (item.retry != null) {
        if (!Number.isSafeInteger(item.retry) || item.retry < 0) throw new TypeError("an event's retry must be a whole number of milliseconds");
        out.push(`retry: ${item.retry}`);
      }
      if (item.data !== undefined) {
        const text = typeof item.data === "string" ? item.data : JSON.stringify(item.data, refuseNonFinite);
        for (const line of lines(text ?? "null")) out.push(`data: ${line}`);
      }
      return `${out.join("\n")}\n\n`;
    }

    function encode(result) {
      if (result === undefined || result === null) return { status: 204, headers: [], body: Buffer.alloc(0) };
      if (typeof result === "string") {
        return { status: 200, headers: [["content-type", "text/plain; charset=utf-8"]], body: Buffer.from(result) };
      }
      if (result instanceof ArrayBuffer || ArrayBuffer.isView(result)) {
        const bytes = result instanceof ArrayBuffer ? Buffer.from(result) : Buffer.from(result.buffer, result.byteOffset, result.byteLength);
        return { status: 200, headers: [["content-type", "application/octet-stream"]], body: bytes };
      }
      if (typeof result === "object" || typeof result === "number" || typeof result === "boolean") {
        const json = JSON.stringify(result, refuseNonFinite);
        if (json === undefined) throw new TypeError("the handler's result cannot be serialised as JSON");
        return { status: 200, headers: [["content-type", "application/json"]], body: Buffer.from(json) };
      }
      throw new TypeError(`handler returned an unsupported type: ${typeof result}`);
    }

    // JSON.stringify would send NaN and Infinity as null: a changed answer, so refused instead.
    function refuseNonFinite(key, value) {
      if (typeof value === "number" && !Number.isFinite(value)) {
        throw new TypeError(`the handler's result holds ${value} (at ${key === "" ? "the top level" : JSON.stringify(key)}), which JSON cannot carry`);
      }
      return value;
    }

    /** Exported functions that are not the handler: the author may have meant one of them. */
    function warnIfHandlerMisnamed(exported) {
      if (exported === null || (typeof exported !== "object" && typeof exported !== "function")) return;
      const names = Object.keys(exported).filter((name) => typeof exported[name] === "function");
      if (names.length === 0) return;
      process.stderr.write(
        `fngw: warning: no default export or handler is a function, so this ran as a script (its stdout is the response); ` +
          `it exports ${names.join(", ")}: export the handler as default\n`,
      );
    }

    const { stdout, stderr } = process; // taken before user code can replace them
    async function main() {
      let { envelope, body } = readInvocation();
      let nonce = envelope.nonce; // set: a warm instance, serving invocations until the gateway stops it
      for (const key of Object.keys(process.env)) delete process.env[key];
      Object.assign(process.env, envelope.env);

      const source = Buffer.from(envelope.code, "base64").toString("utf8");
      const typescript = envelope.typescript === true;
      if (typescript) process.setSourceMapsEnabled(true);
      const exported = await load(source, envelope.packages === true, 0, typescript);
      const handler = findHandler(exported);
      if (handler === null && nonce === undefined) {
        warnIfHandlerMisnamed(exported);
        return; // script mode: stdout is the response, the process ends when its work does
      }
      for (let runs = 1; ; runs++) {
        if (handler !== null) {
          // Handler mode: a handler that exits or never settles is an error, and its output stays in the log.
          send({ kind: "handler" });
          await answer(await handler(buildRequest(envelope, body)));
        }
        if (nonce === undefined) return exitNow(0);
        // A warm instance: the module loaded once (a script runs again for each invocation);
        // each invocation ends with its nonce's marks, then the next one is read.
        await endInvocation(nonce);
        ({ envelope, body } = readInvocation());
        nonce = envelope.nonce;
        if (handler === null) await load(source, envelope.packages === true, runs, typescript);
      }
    }

    process.on("uncaughtException", fail);
    process.on("unhandledRejection", fail);
    main().catch(fail);
  }
})(require);
