# Runs a Python workload after locking this process down with the real library, to check
# the seccomp policy against it: a trapped call kills the process after printing
# {"kind":"forbidden",...,"name":"<syscall>"} on stderr. As root:
#   python3.11 -I -S native/testdata/workloads/locked.py native/testdata/workloads/python.py
# Environment: SANDBOX_LIB (default native/build/libsandbox.so next to this tree), JAIL
# (default "/": chroot there changes nothing, so the stdlib stays importable), NETWORK=1,
# SANDBOX_UID (default 65001).
import ctypes
import os
import runpy
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
lib_path = os.environ.get("SANDBOX_LIB", os.path.join(here, "..", "..", "build", "libsandbox.so"))
lib = ctypes.CDLL(lib_path)
lib.SandboxSeccomp.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                               ctypes.c_int, ctypes.c_int]
uid = int(os.environ.get("SANDBOX_UID", "65001"))
flags = 1 if os.environ.get("NETWORK") == "1" else 0
workload = os.path.abspath(sys.argv[1])
start = time.perf_counter()
lib.SandboxSeccomp(os.environ.get("JAIL", "/").encode(), uid, uid, flags, 2, 0)
sys.stderr.write("SandboxSeccomp: %.3f ms\n" % ((time.perf_counter() - start) * 1000))
runpy.run_path(workload, run_name="__main__")
