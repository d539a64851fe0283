package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"fngw/native/seccomp"
)

const (
	hostUID     = 64331
	hostGID     = 64332
	hostThreads = 4 // THREADS in testdata/host.c
)

// buildHost builds the c-shared library and the C host that loads it into dir.
func buildHost(t *testing.T) (host, lib string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot and setresuid (CI runs as root)")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to build the c-shared library")
	}
	dir := t.TempDir()
	lib = filepath.Join(dir, "libsandbox.so")
	build := exec.Command(goTool, "build", "-trimpath", "-buildmode=c-shared", "-o", lib, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	header, err := os.ReadFile(filepath.Join(dir, "libsandbox.h"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(header, []byte("extern int SandboxSeccomp(char* jail, int uid, int gid, unsigned int flags, int reportFD, int maxThreads);")) {
		t.Fatalf("the header does not declare SandboxSeccomp as documented:\n%s", header)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the C host")
	}
	host = filepath.Join(dir, "host")
	cc := exec.Command(gcc, "-O1", "-Wall", "-Werror", "-I", dir, "-o", host, "testdata/host.c", "-ldl", "-lpthread")
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	return host, lib
}

// runHost runs the host in mode and returns its output lines as a map and its report.
func runHost(t *testing.T, host, lib string, flags int, mode string) (map[string]string, string, *os.ProcessState) {
	t.Helper()
	jail := t.TempDir()
	if err := os.Chmod(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reportR.Close()
	cmd := exec.Command(host, lib, jail, fmt.Sprint(hostUID), fmt.Sprint(hostGID), fmt.Sprint(flags), mode)
	// Without it the Go runtime holds its cgroup CPU files open and the lock-down refuses them.
	cmd.Env = append(os.Environ(), "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{reportW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := reportW.Close(); err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	if _, err := report.ReadFrom(reportR); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("host stderr: %s", stderr.String())
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out, report.String(), cmd.ProcessState
}

// The library loaded by a multi-threaded C program: the export returns into C, every
// thread (the host's, Go's, new ones) runs as the sandbox uid, and the filter holds.
func TestCSharedLibraryInACHost(t *testing.T) {
	host, lib := buildHost(t)
	for _, flags := range []int{0, 1} {
		t.Run(fmt.Sprintf("flags=%d", flags), func(t *testing.T) {
			out, report, state := runHost(t, host, lib, flags, "probe")
			if state.ExitCode() != 0 || report != "" {
				t.Fatalf("host: %s, report %q, output %v", state, report, out)
			}
			inet := "EPERM"
			if flags == 1 {
				inet = "ok"
			}
			want := map[string]string{"rc": "0", "new_thread": "ok",
				"new_thread_uid": fmt.Sprint(hostUID), "fork": "EPERM", "socket_unix": "EPERM",
				"socket_inet": inet, "setuid0": "EPERM", "getuid": fmt.Sprint(hostUID)}
			for i := range hostThreads {
				want[fmt.Sprintf("thread_uid_%d", i)] = fmt.Sprint(hostUID)
			}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("%s=%q, want %q", k, out[k], v)
				}
			}
		})
	}
	t.Run("forbidden", func(t *testing.T) {
		out, report, state := runHost(t, host, lib, 0, "forbidden")
		status, ok := state.Sys().(syscall.WaitStatus)
		if !ok || !status.Signaled() || status.Signal() != syscall.SIGSYS || out["survived"] != "" {
			t.Fatalf("host ended %s with output %v, want killed by SIGSYS", state, out)
		}
		arch, err := seccomp.Native()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"kind":"forbidden","syscall":%d,"name":"syslog"}`+"\n", arch.Syscalls["syslog"])
		if report != want {
			t.Fatalf("report %q, want %q", report, want)
		}
	})
}
