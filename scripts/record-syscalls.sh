#!/bin/sh
# Records which system calls a Python or Node workload makes, to grow the seccomp allowlist
# (native/seccomp/policy.go) from evidence rather than guesses.
#
# Usage: scripts/record-syscalls.sh python|node <file-with-workload>
#
# Runs the workload under `strace -f -qq -e trace=all` (every thread and child) with the
# interpreter the sandbox uses (Python: the real binary behind $PYTHON, default python3.11,
# with -I -S; Node: $NODE, default node) and prints the sorted set of syscall names, one a line,
# on stdout; the workload's own output goes to stderr.
#
# Only what happens after the lock-down matters. If the workload touches the marker path
# /__record_syscalls_start__ (Python: `open()` it inside try/except; Node: `fs.existsSync()`),
# only the syscalls made from that point on are printed; without the marker, all of them.
# The sample workloads in native/testdata/workloads/ do this, and fetch $FETCH_URL when set.
# Needs strace. Compare the output with the policy; see native/README.md.
set -eu

usage() {
  echo "usage: $0 python|node <file-with-workload>" >&2
  exit 2
}

[ $# -eq 2 ] || usage
runtime=$1
workload=$2
case $runtime in python | node) ;; *) usage ;; esac
[ -f "$workload" ] || { echo "$0: no such file: $workload" >&2; exit 2; }
command -v strace >/dev/null 2>&1 || { echo "$0: strace is not installed" >&2; exit 2; }

case $runtime in
python)
  # sys.executable resolves a pyenv shim or a symlink to the real interpreter binary.
  interp=$("${PYTHON:-python3.11}" -c 'import sys; print(sys.executable)')
  set -- "$interp" -I -S "$workload"
  ;;
node)
  interp=$("${NODE:-node}" -p 'process.execPath')
  set -- "$interp" "$workload"
  ;;
esac

trace=$(mktemp)
trap 'rm -f "$trace"' EXIT
trap 'exit 130' INT TERM

status=0
strace -f -qq -e trace=all -o "$trace" "$@" >&2 || status=$?
if [ "$status" -ne 0 ]; then
  echo "$0: the workload exited with status $status (syscalls are still listed)" >&2
fi

marker=__record_syscalls_start__
# strace -f lines: "<pid> name(args...) = result", "<pid> name(args <unfinished ...>",
# "<pid> <... name resumed>...", "<pid> --- SIGxxx ...", "<pid> +++ exited ...".
# A call is counted at its start; resumed halves, signals and exits are skipped.
# Two passes over the trace: the first finds the marker line (0 if none), the second lists.
awk -v marker="$marker" '
  FNR == NR { if (!first && index($0, marker)) first = FNR; next }
  FNR > first {
    sub(/^[0-9]+ +/, "")
    if (match($0, /^[a-z_][a-z0-9_]*\(/)) print substr($0, 1, RLENGTH - 1)
  }
' "$trace" "$trace" | sort -u
