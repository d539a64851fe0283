package lockdown

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"fngw/native/internal/cthreads"
	"fngw/native/seccomp"
	"golang.org/x/sys/unix"
)

// seccompModeFilter is what PR_GET_SECCOMP says of a thread under a filter.
const seccompModeFilter = 2

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot and setresuid (CI runs as root)")
	}
}

func TestLockedChild(t *testing.T) {
	needRoot(t)
	for _, network := range []bool{false, true} {
		t.Run(fmt.Sprintf("network=%v", network), func(t *testing.T) {
			c := startChild(t, "lock", network)
			if c.state.ExitCode() != 0 {
				t.Fatalf("child: %s; report %q; stderr: %s", c.state, c.report, c.stderr)
			}
			var p probes
			if err := json.Unmarshal([]byte(c.stdout), &p); err != nil {
				t.Fatalf("child output %q: %v", c.stdout, err)
			}
			inet := "EPERM"
			if network {
				inet = "ok"
			}
			want := map[string]string{
				"fork": "EPERM", "clone3": "ENOSYS", "clone_newuser": "EPERM", "execve": "EPERM",
				"socket_unix": "EPERM", "socket_inet": inet, "socketpair": "ok", "socketpair_dgram": "EPERM",
				"ptrace": "EPERM", "kill_init": "EPERM", "kill_self": "ok", "setuid0": "EPERM",
				"chroot": "EPERM", "mount": "EPERM", "unshare": "EPERM",
				"sigaction_sigsys": "EPERM", "sigaction_sigsys_query": "ok", "ioctl_tiocsti": "EPERM", "ioctl_fionread": "ok",
				"jail_root": "ok", "cwd": "ok", "dumpable": "ok", "pdeathsig": "ok",
				"rlimits": "ok", "go_runtime": "ok",
			}
			for name, w := range want {
				if got := p.Results[name]; got != w {
					t.Errorf("%s: %q, want %q", name, got, w)
				}
			}
			if len(p.Threads) != 3*preThreads+1 {
				t.Errorf("%d threads reported, want %d", len(p.Threads), 3*preThreads+1)
			}
			wantIDs := cthreads.IDs{UID: testUID, EUID: testUID, GID: testGID, EGID: testGID,
				NoNewPrivs: 1, Seccomp: seccompModeFilter}
			for i, ids := range p.Threads {
				if ids != wantIDs {
					t.Errorf("thread %d: %+v, want %+v", i, ids, wantIDs)
				}
			}
			if c.report != "" {
				t.Errorf("unexpected report %q", c.report)
			}
		})
	}
}

// An unknown system call kills the process by SIGSYS after the reporter named it, whichever
// thread made it.
func TestForbiddenCallIsReportedAndKills(t *testing.T) {
	needRoot(t)
	arch, err := seccomp.Native()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"kind":"forbidden","syscall":%d,"name":"syslog"}`+"\n", arch.Syscalls["syslog"])
	if arch.Syscalls["syslog"] != unix.SYS_SYSLOG {
		t.Fatalf("table says syslog is %d, the kernel %d", arch.Syscalls["syslog"], unix.SYS_SYSLOG)
	}
	for _, mode := range []string{"forbidden", "forbidden-thread"} {
		t.Run(mode, func(t *testing.T) {
			c := startChild(t, mode, false)
			status, ok := c.state.Sys().(syscall.WaitStatus)
			if !ok || !status.Signaled() || status.Signal() != syscall.SIGSYS {
				t.Fatalf("child ended with %s, want killed by SIGSYS; stderr: %s", c.state, c.stderr)
			}
			if strings.Contains(c.stdout, "survived") {
				t.Fatal("the child survived the forbidden call")
			}
			if c.report != want {
				t.Fatalf("report %q, want %q", c.report, want)
			}
		})
	}
}
