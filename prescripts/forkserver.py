# The Python fork-server. src/sandbox/prescript.ts renders it after the Python prescript
# (prescripts/prescript.py, without its final call): _serve() runs in a parent the gateway
# starts once, and returns only in a forked child, which then calls _prescript() exactly as a
# spawned interpreter would (loads the library, waits on fd 3, locks down, runs the function).
#
# The parent never loads the lock-down library (its Go runtime starts threads, and a process
# with threads must not fork) and never runs a line of user code: it imports the standard
# library modules functions commonly use, then serves. Per invocation the gateway sends one
# message on fd 3 (a Unix sequenced-packet socket): b"fork <id> <n>" with n descriptors
# attached, the child's stdout, stderr, request (read end) and result channels and, when n is 5,
# the channel its library sends the seccomp listener on; after them, for a child prepared for a
# slot, the slot's cgroup.procs files (opened for writing).
# The parent forks, writes the child's pid to each cgroup.procs file (moving it into the slot's
# cgroup: a migration waits for the kernel, and here it keeps the gateway's event loop free),
# and reports on its stdout, one line each:
#   "pid <id> <pid> <joined>"   the child exists (its own process group); <joined> is 1 when it
#                               was moved into the cgroup files sent, 0 when none were sent or a
#                               write failed (the gateway then moves it itself, or refuses); the
#                               gateway writes the lock-down line on fd 3 only after this line
#   "exit <pid> <wait status>"  the parent reaped it
#   "ready"                     once, when it starts serving
# The parent holds no invocation's state: the descriptors are closed right after the fork,
# and each child starts from the same clean state. It exits when fd 3 reaches end of file.


def _serve():
    import ctypes
    import gc
    import os
    import select
    import signal
    import socket

    # Children share the parent's pages until they write them: no collection in the parent leaves
    # holes, and the objects loaded here are frozen so that a child's collections never touch them.
    gc.disable()
    # Imported once here so each child finds them loaded; a function that imports them pays
    # nothing. (Modules that start threads or open files at import must not be in this list.)
    for name in {{PRELOAD_MODULES}}:
        try:
            __import__(name)
        except ImportError:
            pass
    relocated = _relocate_modules()

    MAX_CGROUP_FILES = 2  # cgroup v1: memory and pids; v2: one
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the gateway
    if os.getppid() == 1:
        os._exit(0)

    control = socket.socket(fileno=3)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler of its own, so SIGCHLD wakes the poll

    def report(line):
        os.write(1, line.encode() + b"\n")

    def reap():
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            report(f"exit {pid} {status}")

    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_read, select.POLLIN)
    gc.collect()  # what start-up left (the prctl call's library object, say) is not handed to every child
    gc.freeze()
    report("ready")
    while True:
        for fd, _ in poller.poll():
            if fd == wake_read:
                while True:
                    try:
                        os.read(wake_read, 512)
                    except BlockingIOError:
                        break
                reap()
                continue
            message, fds, _flags, _address = socket.recv_fds(control, 64, 5 + MAX_CGROUP_FILES)
            if not message:
                os._exit(0)  # the gateway let the fork-server go
            words = message.split()
            channels = int(words[2]) if len(words) == 3 and words[2] in (b"4", b"5") else 0
            if words[0] != b"fork" or not channels or not channels <= len(fds) <= channels + MAX_CGROUP_FILES:
                for received in fds:
                    os.close(received)
                report("error bad-request")
                continue
            pid = os.fork()
            if pid == 0:
                # The child: its own process group (killed as one at the deadline), its
                # channels on fds 1-4, a stdin that is empty and its own. The parent's own
                # descriptors are closed; anything else open (one the gateway leaked into the
                # parent) is left for the lock-down to refuse, so that it fails closed.
                signal.set_wakeup_fd(-1)
                gc.enable()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setpgid(0, 0)
                stdin, peer = socket.socketpair()
                peer.close()
                sources = [stdin.detach(), *fds[:channels]]
                for target, source in enumerate(sources):
                    os.dup2(source, target)  # dup2 leaves the copy inheritable; nothing is exec'd
                control.detach()  # fd 3 is now the request channel
                for fd in {wake_read, wake_write, *sources, *fds[channels:]} - set(range(channels + 1)):
                    os.close(fd)
                return relocated
            try:
                os.setpgid(pid, pid)  # also here, so the group exists before the gateway may kill it
            except OSError:
                pass  # already exited, or already its own group
            joined = len(fds) > channels
            for procs in fds[channels:]:
                try:
                    os.write(procs, str(pid).encode())
                except OSError:
                    joined = False
            for received in fds:
                os.close(received)
            report(f"pid {words[1].decode()} {pid} {int(joined)}")


def _relocate_modules():
    """Moves the paths of the modules loaded so far to where the jail shows them (the prescript's
    _jail_paths), once here rather than in every child: walking their code objects costs more
    than a fork. sys.path and the prefixes go back to the host's, for the parent; each child's
    prescript moves those after its lock-down and skips the modules named in the set returned here."""
    import sys

    saved = (list(sys.path), sys._stdlib_dir, sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             sys.platlibdir, sys.executable, sys._base_executable, sys.orig_argv[0])
    _jail_paths(sys, __import__("os"))()
    (sys.path[:], sys._stdlib_dir, sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
     sys.platlibdir, sys.executable, sys._base_executable, sys.orig_argv[0]) = saved
    sys.path_importer_cache.clear()
    return frozenset(sys.modules)


_relocated = _serve()  # returns only in a forked child
del _serve, _relocate_modules
_prescript(_relocated)
