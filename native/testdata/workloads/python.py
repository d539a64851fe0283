# A representative Python workload for scripts/record-syscalls.sh: what a function may do
# after the lock-down. The prescript has loaded ctypes before the lock; everything below the
# marker runs as user code would. Set FETCH_URL to an http:// URL to exercise the network.
import ctypes  # noqa: F401  (loaded by the prescript before the lock)
import os
import sys

try:
    open("/__record_syscalls_start__")
except OSError:
    pass

import base64
import collections
import datetime
import decimal
import hashlib
import io
import json
import random
import re
import socket
import sqlite3
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zlib
import zoneinfo

out = {}
out["json"] = json.loads(json.dumps({"a": [1, 2.5, "x"], "b": None}))
out["re"] = re.findall(r"\w+", "hello regex world")
out["sha"] = hashlib.sha256(b"abc").hexdigest() + hashlib.md5(b"abc").hexdigest()
out["b64"] = base64.b64encode(os.urandom(8)).decode()
out["rand"] = random.SystemRandom().random() + random.random()
out["uuid"] = str(uuid.uuid4())
out["dec"] = str(decimal.Decimal("1.1") + decimal.Decimal("2.2"))
out["zlib"] = len(zlib.decompress(zlib.compress(b"x" * 10000)))
out["now"] = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).isoformat()
out["utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
out["url"] = urllib.parse.urlparse("https://example.com/a?b=c").query
out["counter"] = collections.Counter("hello").most_common(1)


def work(n, results, lock):
    total = sum(i * i for i in range(n))
    time.sleep(0.01)
    with lock:
        results.append(total)


results, lock = [], threading.Lock()
threads = [threading.Thread(target=work, args=(10000, results, lock)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out["threads"] = len(results)
event = threading.Event()
event.wait(0.01)

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "f.txt")
    with open(path, "w") as f:
        f.write("data")
    os.rename(path, path + ".2")
    os.chmod(path + ".2", 0o600)
    out["listdir"] = os.listdir(d)
    with open(path + ".2", "r+") as f:
        f.truncate(2)
    db = sqlite3.connect(os.path.join(d, "db.sqlite"))
    db.execute("create table t (x)")
    db.execute("insert into t values (1)")
    db.commit()
    out["sqlite"] = db.execute("select count(*) from t").fetchone()[0]
    db.close()
mem = sqlite3.connect(":memory:")
out["sqlite_mem"] = mem.execute("select 1").fetchone()[0]

out["cwd"] = os.getcwd()
out["ids"] = (os.getpid(), os.getppid(), os.getuid(), os.geteuid(), os.getgid())
out["isatty"] = sys.stdout.isatty()
out["cpu"] = os.cpu_count()
out["time"] = (time.time(), time.monotonic(), time.process_time(), time.perf_counter())
try:
    out["ctx"] = ssl.create_default_context().verify_mode
except Exception as exc:  # no certificates in a jail is fine
    out["ctx"] = repr(exc)

url = os.environ.get("FETCH_URL")
if url:
    try:
        host = urllib.parse.urlparse(url).hostname
        out["addr"] = socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)[0][4][0]
        with urllib.request.urlopen(url, timeout=5) as resp:
            out["fetch"] = len(resp.read())
    except OSError as exc:  # PermissionError without network
        out["fetch"] = repr(exc)

sys.stdout.write(json.dumps(out, default=str) + "\n")
sys.stdout.flush()
