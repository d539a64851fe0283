# The Python prescript. src/sandbox/prescript.ts renders it once at start-up, replacing
# each placeholder in double braces with a literal; the interpreter reads it from stdin
# (`python -I -S -B -u -`). The gateway may start it before any invocation is known.
#
# Fd 3 carries, in order: one line of lock-down parameters, written by the gateway
# (jail, uid, gid, flags, max threads, listener fd); then, read only after the lock, one JSON line with
# the request envelope, the function's environment and its code (base64), then the
# request body. Fd 4 carries the result out (JSON lines: a whole answer with its body bytes,
# or a streamed one's head, chunks and end); stdout and stderr are the invocation's log. Everything lives inside _prescript() so that user
# code, run in a module of its own, finds no prescript globals to reach. (Longer than the
# usual file: the interpreter reads it whole from stdin, so it cannot import a sibling.)


def _prescript(relocated=frozenset()):
    import ctypes
    import gc
    import os

    library = ctypes.CDLL({{LIB_PATH}})
    lockdown = library.SandboxLockdown
    lockdown.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lockdown.restype = ctypes.c_int
    library.SandboxReady()  # waits for the library's runtime now, not in the lock-down call

    # Warm up while waiting: json's C accelerator, used for the envelope and the result.
    import _json
    import binascii
    import sys

    relocate = _jail_paths(sys, os, relocated)  # worked out now: it resolves paths on the host

    # Wait for an invocation. The first line is the gateway's own (no byte of it comes
    # from a function); an empty read means the gateway let this interpreter go.
    received = b""
    while b"\n" not in received:
        chunk = os.read(3, 1 << 16)
        if not chunk:
            os._exit(0)
        received += chunk
    line, received = received.split(b"\n", 1)
    jail, uid, gid, flags, max_threads, listener = line.decode().split("\0")
    if lockdown(jail.encode(), int(uid), int(gid), int(flags), 4, int(max_threads), int(listener)) != 0:
        os._exit(125)  # unreachable: the library ends the process itself on any failure
    os.write(4, b'{"kind":"locked"}\n')  # before any byte of the function: see PROTOCOL.md
    del library, lockdown, line
    # A ctypes function object references itself: only a collection frees it, and the library
    # object with it. A forked child's are young (the parent froze its own objects): generations
    # 0 and 1 hold them, and collecting those costs ~0.1 ms where a full collection costs ~2.
    gc.collect(1 if relocated else 2)
    relocate()
    del relocate

    # Locked down: chroot, unprivileged uid, no_new_privs and seccomp hold from here on.
    # Everything below, the standard library imports included, runs inside the jail.
    # json, traceback and base64 cost more to import than the rest of the prescript
    # together (json pulls in re and enum): the envelope and the result are handled with
    # the C accelerator that json itself uses, and traceback only on failure.

    class _DecoderContext:
        strict = True
        object_hook = object_pairs_hook = parse_constant = None
        parse_float = float
        parse_int = int

    scan = _json.make_scanner(_DecoderContext())

    def not_serialisable(value):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    # Same output as json.dumps(value) with its defaults.
    encode = _json.make_encoder({}, not_serialisable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)

    def dumps(value):
        return "".join(encode(value, 0))

    # A handler's JSON answer: NaN and Infinity are not JSON, so they are refused, not sent.
    encode_answer = _json.make_encoder({}, not_serialisable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)

    def dumps_answer(value):
        try:
            return "".join(encode_answer(value, 0))
        except ValueError as exc:
            if "Out of range float" not in str(exc):
                raise
            raise ValueError("the handler's result holds NaN or Infinity, which JSON cannot carry; return None or a string for it") from None

    def read_invocation(received):
        """One invocation from fd 3: its JSON line and exactly body_length bytes; returns what follows too."""
        while b"\n" not in received:
            chunk = os.read(3, 1 << 16)
            if not chunk:
                exit_now(0)  # the gateway let this instance go
            received += chunk
        line, received = received.split(b"\n", 1)
        envelope = scan(line.decode(), 0)[0]
        chunks, have, need = [received], len(received), envelope["body_length"]
        while have < need:
            chunk = os.read(3, 1 << 20)
            if not chunk:
                exit_now(0)
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        return envelope, data[:need], data[need:]

    def end_invocation(nonce):
        """Warm instances: marks the end of this invocation's stdout, stderr and result (PROTOCOL.md)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        marker = b"\0fngw-end:" + nonce.encode() + b"\0"
        try:
            write_all(1, marker)
            write_all(2, marker)
            write_all(4, b'{"kind":"end","nonce":"' + nonce.encode() + b'"}\n')
        except OSError:
            os._exit(1)  # user code closed a channel: the instance cannot report, so it ends

    def write_all(fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    # Writes wait while the gateway's buffer for this answer is full: a slow client paces the function.
    def send(frame, body=b""):
        write_all(4, dumps(frame).encode() + b"\n" + body)

    def send_chunk(data):
        """A chunk of a streamed body: its frame line and its bytes in one writev, without copying them."""
        if data:
            line = b'{"kind":"chunk","length":%d}\n' % len(data)
            written = os.writev(4, (line, data))
            if written < len(line) + len(data):
                write_all(4, (line + data)[written:])

    def exit_now(code):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)

    def exit_code_of(exc):
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        print(exc.code, file=sys.stderr)
        return 1

    def fail(exc):
        """Report an exception from user code: traceback to stderr, summary on the result channel."""
        import traceback

        tb = traceback.TracebackException.from_exception(exc)
        tb.stack = traceback.StackSummary.from_list([f for f in tb.stack if f.filename == FILENAME])
        sys.stderr.write("".join(tb.format()))
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        send({"kind": "error", "message": summary})
        exit_now(1)

    class Headers(dict):
        """Header names are lower-cased; lookups ignore case."""

        def __getitem__(self, name):
            return super().__getitem__(name.lower())

        def __contains__(self, name):
            return isinstance(name, str) and super().__contains__(name.lower())

        def get(self, name, default=None):
            return super().get(name.lower(), default)

    class Request:
        __slots__ = ("method", "path", "url", "query", "query_items", "headers", "body")

        def __init__(self, envelope, body):
            self.method = envelope["method"]
            self.path = envelope["path"]
            self.url = envelope["url"]
            self.query_items = [tuple(pair) for pair in envelope["query"]]
            self.query = {}
            for key, value in self.query_items:
                self.query.setdefault(key, value)
            self.headers = Headers()
            for key, value in envelope["headers"]:
                self.headers[key] = value if key not in self.headers else self.headers[key] + ", " + value
            self.body = body

        def text(self, encoding="utf-8"):
            return self.body.decode(encoding)

        def json(self):
            import json

            return json.loads(self.body)

        def __repr__(self):
            return f"<Request {self.method} {self.path}>"

    def encode_body(value):
        if value is None:
            return b"", None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value), "application/octet-stream"
        if isinstance(value, str):
            return value.encode(), "text/plain; charset=utf-8"
        if isinstance(value, (dict, list, int, float, bool)):
            return dumps_answer(value).encode(), "application/json"
        raise TypeError(f"handler returned an unsupported type: {type(value).__name__}")

    EVENT_FIELDS = ("comment", "event", "id", "retry", "data")

    def lines(text):
        return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    def server_sent_event(item):
        """One Server-Sent Event: data (a str as is, anything else as JSON), event, id, retry, comment."""
        unknown = [str(key) for key in item if key not in EVENT_FIELDS]
        if unknown:
            raise TypeError(f"an event's fields are comment, event, id, retry and data, not {', '.join(unknown)}")
        out = []
        if item.get("comment") is not None:
            out += [": " + line for line in lines(str(item["comment"]))]
        for field in ("event", "id"):
            if item.get(field) is None:
                continue
            value = str(item[field])
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError(f"an event's {field} cannot hold a line break or NUL")
            out.append(f"{field}: {value}")
        if item.get("retry") is not None:
            if isinstance(item["retry"], bool) or not isinstance(item["retry"], int) or item["retry"] < 0:
                raise TypeError("an event's retry must be a whole number of milliseconds")
            out.append(f"retry: {item['retry']}")
        if "data" in item:
            data = item["data"]
            out += ["data: " + line for line in lines(data if isinstance(data, str) else dumps_answer(data))]
        return ("\n".join(out) + "\n\n").encode()

    def is_stream(value):
        return type(value).__name__ in ("generator", "async_generator")

    def stream(items, status, headers):
        """Streams what a generator yields: str (UTF-8), bytes, or dicts, each one Server-Sent Event.
        The head goes with the first item, whose kind sets the content type."""
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        started = False

        def start(default):
            nonlocal content_type, started
            if started:
                return
            if content_type is None and default is not None:
                content_type = headers["content-type"] = default
            send({"kind": "response", "status": status, "headers": list(headers.items()), "streamed": True})
            started = True

        def emit(item):
            if isinstance(item, str):
                start("text/plain; charset=utf-8")
                send_chunk(item.encode())
            elif isinstance(item, (bytes, bytearray, memoryview)):
                start("application/octet-stream")
                send_chunk(bytes(item))
            elif isinstance(item, dict):
                start("text/event-stream")
                if not content_type.lower().startswith("text/event-stream"):
                    raise TypeError(f"a dict streams as an event only under content-type text/event-stream, not {content_type}")
                send_chunk(server_sent_event(item))
            else:
                raise TypeError(f"a streamed item must be str, bytes or a dict (an event), not {type(item).__name__}")

        if type(items).__name__ == "async_generator":
            import asyncio

            async def drain():
                async for item in items:
                    emit(item)

            asyncio.run(drain())
        else:
            for item in items:
                emit(item)
        start(None)
        send({"kind": "body_end"})

    def respond(result):
        """Maps a handler's return value to a response (the README's table of return values)."""
        headers = {}
        status = None
        if isinstance(result, tuple):
            if len(result) not in (2, 3) or isinstance(result[1], bool) or not isinstance(result[1], int):
                raise TypeError("a tuple result must be (body, status) or (body, status, headers)")
            if len(result) == 3:
                if not isinstance(result[2], dict):
                    raise TypeError("the headers of a tuple result must be a dict")
                headers = {str(k): str(v) for k, v in result[2].items()}
            result, status = result[0], result[1]
        if is_stream(result):
            return stream(result, 200 if status is None else status, headers)
        body, content_type = encode_body(result)
        if status is None:
            status = 204 if result is None else 200
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = content_type
        send({"kind": "response", "status": status, "headers": list(headers.items()), "body_length": len(body)}, body)

    FILENAME = "function.py"
    envelope, body, received = read_invocation(received)
    request = Request(envelope, body)
    source = binascii.a2b_base64(envelope["code"])
    nonce = envelope.get("nonce")  # set: a warm instance, serving invocations until the gateway stops it
    del body
    os.environ.clear()
    os.environ.update(envelope["env"])
    # Line-buffered, as on a terminal: a print() leaves in one write, so live output shows whole
    # lines as they are printed (flush=True sends a partial one).
    for channel in (sys.stdout, sys.stderr):
        channel.reconfigure(line_buffering=True, write_through=False)
    if envelope.get("packages"):
        # The function's package environment, bound read-only at /packages. Appended, so
        # the standard library cannot be shadowed by a package.
        sys.path.append("/packages")

    code = compile(source, FILENAME, "exec") if nonce else source

    def run_module():
        module = type(sys)("__main__")
        module.__file__ = FILENAME
        sys.modules["__main__"] = module
        try:
            exec(code if nonce else compile(source, FILENAME, "exec"), module.__dict__)
        except SystemExit:
            raise  # a script's exit status; Python exits as usual
        except BaseException as exc:  # noqa: BLE001 - every failure of user code is reported, KeyboardInterrupt included
            fail(exc)
        return module

    def _refers_to(code, name):
        # Whether the script reads `name` anywhere but in its own body (a call such as main(...) at the end,
        # as code-node templates do): then it ran what it meant to run, and the warning would be false.
        import dis

        return any(
            i.opname in ("LOAD_NAME", "LOAD_GLOBAL") and i.argval == name for i in dis.get_instructions(code)
        ) or any(_refers_to(c, name) for c in code.co_consts if isinstance(c, type(code)) and c.co_name != name)

    module = run_module()
    handler = module.__dict__.get("handler")
    if not callable(handler) and not nonce:
        # Script mode: stdout is the response. A callable under a name handlers often have elsewhere
        # says the author meant handler mode: say so in the log rather than answer 200 empty.
        meant = [n for n in ("main", "handle", "lambda_handler", "app") if callable(module.__dict__.get(n))]
        if meant:
            compiled = compile(source, FILENAME, "exec")
            meant = [n for n in meant if not _refers_to(compiled, n)]
        if meant:
            sys.stderr.write(
                f"fngw: warning: no handler(request) is defined, so this ran as a script (its stdout is the response); "
                f"{', '.join(meant)} looks like one: name it handler\n"
            )
        # Ends as Python's own exit would (the script's non-daemon threads joined, then its atexit
        # functions), then at once, as handler mode does: the interpreter's finalization (every
        # module torn down, a full collection) cost a script twice a handler's time.
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
        exit_now(0)

    def call_handler(request):
        # Handler mode: a handler that exits without answering is an error, and its output stays in the log.
        send({"kind": "handler"})
        try:
            result = handler(request)
            if type(result).__name__ == "coroutine":
                import asyncio

                result = asyncio.run(result)
            respond(result)
        except SystemExit as exc:
            exit_now(exit_code_of(exc))
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    if not nonce:
        call_handler(request)
        exit_now(0)
    # A warm instance: the module ran once (a script runs again for each invocation, in a fresh
    # module); each invocation ends with its nonce's marks, then the next one is read.
    while True:
        if callable(handler):
            call_handler(request)
        end_invocation(nonce)
        envelope, body, received = read_invocation(received)
        nonce, request = envelope["nonce"], Request(envelope, body)
        del envelope, body
        if not callable(handler):
            run_module()

def _jail_paths(sys, os, relocated=frozenset()):
    """Returns a function that moves every path of the interpreter's own install to where the
    jail shows it (the rule of pythonJailDirs in src/sandbox/jail.ts): the standard library
    at /usr/lib/pythonX.Y, any other sys.path directory beside it as /usr/lib/pythonX.Y-<name>.
    After the lock-down the host's prefix (a pyenv under /root, say) exists nowhere: sys.path,
    sys.prefix and kin, and the modules, loaders and code objects loaded before the lock all
    name the jail's paths, so that later imports find the standard library and nothing a
    function can read names the host's layout. Modules named in `relocated` were moved already
    (by the fork-server's parent, before it forked this interpreter)."""
    jail_stdlib = "/usr/lib/python%d.%d" % sys.version_info[:2]
    stdlib = os.path.realpath(sys._stdlib_dir)
    moves = {}  # a host directory, as spelled and resolved -> its place in the jail
    for spelled in [sys._stdlib_dir] + sys.path:
        if not spelled or not os.path.isdir(spelled):
            continue
        real = os.path.realpath(spelled)
        inner = os.path.relpath(real, stdlib)
        if inner == ".":
            moves[spelled] = moves[real] = jail_stdlib
        elif not inner.startswith(".."):
            moves[spelled] = moves[real] = jail_stdlib + "/" + inner
        else:
            moves[spelled] = moves[real] = jail_stdlib + "-" + os.path.basename(real)
    kept = [p for p in sys.path if p in moves]
    longest_first = sorted(moves.items(), key=lambda item: -len(item[0]))

    def moved(value):
        if isinstance(value, str):
            for host, jail in longest_first:
                if value == host or value.startswith(host + "/"):
                    return jail + value[len(host):]
        return value

    def fix_code(code):
        consts = tuple(fix_code(c) if isinstance(c, type(code)) else c for c in code.co_consts)
        return code.replace(co_filename=moved(code.co_filename), co_consts=consts)

    def fix_functions(namespace, module_name, seen):
        for value in list(namespace.values()):
            if id(value) in seen or getattr(value, "__module__", None) != module_name:
                continue
            seen.add(id(value))
            if hasattr(value, "__code__") and not hasattr(value, "__func__"):  # a bound method's function is its class's
                value.__code__ = fix_code(value.__code__)
            elif isinstance(value, type):
                members = {}
                for name, member in vars(value).items():
                    for inner in (getattr(member, "__func__", None), getattr(member, "fget", None), getattr(member, "fset", None), member):
                        if hasattr(inner, "__code__"):
                            members[name + str(id(inner))] = inner
                fix_functions(members, module_name, seen)

    def relocate():
        sys.path[:] = [moved(p) for p in kept]
        sys.path_importer_cache.clear()
        sys._stdlib_dir = jail_stdlib
        sys.prefix = sys.exec_prefix = sys.base_prefix = sys.base_exec_prefix = "/usr"
        sys.platlibdir = "lib"
        sys.executable = sys._base_executable = "/usr/bin/python%d.%d" % sys.version_info[:2]
        sys.orig_argv[0] = sys.executable
        if len(sys.modules) == len(relocated):
            return  # a forked child that imported nothing new: iterating would copy the parent's pages
        seen = set()
        for name, module in list(sys.modules.items()):
            if name in relocated:
                continue
            namespace = getattr(module, "__dict__", {})
            # Frozen modules' code is named "<frozen os>"; those loaded from files name their path.
            origin = getattr(namespace.get("__spec__"), "origin", None)
            from_disk = isinstance(origin, str) and moved(origin) != origin
            for attribute in ("__file__", "__cached__"):
                if isinstance(namespace.get(attribute), str):
                    namespace[attribute] = moved(namespace[attribute])
            if isinstance(namespace.get("__path__"), list):
                namespace["__path__"][:] = [moved(p) for p in namespace["__path__"]]
            spec = namespace.get("__spec__")
            if spec is not None:
                spec.origin = moved(spec.origin)
                if isinstance(spec.submodule_search_locations, list):
                    spec.submodule_search_locations[:] = [moved(p) for p in spec.submodule_search_locations]
                if isinstance(getattr(spec, "_cached", None), str):
                    spec._cached = moved(spec._cached)
                state = spec.loader_state
                if isinstance(getattr(state, "filename", None), str):
                    state.filename = moved(state.filename)
            loader = namespace.get("__loader__")
            if isinstance(getattr(loader, "path", None), str):
                loader.path = moved(loader.path)
            if from_disk:
                fix_functions(namespace, name, seen)

    return relocate


_prescript()
