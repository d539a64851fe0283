package lockdown

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompNotifSize and seccompRespSize are sizeof(struct seccomp_notif) and
// sizeof(struct seccomp_notif_resp) (include/uapi/linux/seccomp.h).
const (
	seccompNotifSize = 80
	seccompRespSize  = 24
)

// With a listener channel, the filter's listener reaches the other end of the channel before
// Enforce returns, the channel is closed in the child, and a refused call waits for the
// listener's holder: here it is named (syslog) and answered EPERM, which the child sees.
func TestListenerIsHandedOverAndNamesRefusedCalls(t *testing.T) {
	needRoot(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(pair[0]), "listener-channel"), os.NewFile(uintptr(pair[1]), "child-end")
	defer mine.Close()
	jail := t.TempDir()
	if err := os.Chmod(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reportR.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envMode+"=listener", envJail+"="+jail, envNet+"=0", goDebug)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{reportW, theirs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reportW.Close()
	theirs.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	listener := receiveListener(t, int(mine.Fd()))
	defer unix.Close(listener)
	notif := make([]byte, seccompNotifSize)
	if err := ioctl(listener, unix.SECCOMP_IOCTL_NOTIF_RECV, notif); err != nil {
		t.Fatalf("NOTIF_RECV: %v", err)
	}
	id := binary.LittleEndian.Uint64(notif[0:])
	nr := int32(binary.LittleEndian.Uint32(notif[16:]))
	if nr != unix.SYS_SYSLOG {
		t.Fatalf("notified of call %d, want syslog (%d)", nr, unix.SYS_SYSLOG)
	}
	resp := make([]byte, seccompRespSize)
	binary.LittleEndian.PutUint64(resp[0:], id)
	errno := -int32(unix.EPERM)
	binary.LittleEndian.PutUint32(resp[16:], uint32(errno))
	if err := ioctl(listener, unix.SECCOMP_IOCTL_NOTIF_SEND, resp); err != nil {
		t.Fatalf("NOTIF_SEND: %v", err)
	}
	select {
	case err := <-done:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not finish")
	}
	if got := strings.TrimSpace(stdout.String()); !strings.HasPrefix(got, "channel=EBADF syslog=EPERM") {
		t.Fatalf("child printed %q (stderr %q), want the channel closed and syslog answered EPERM", got, stderr.String())
	}
	if state := cmd.ProcessState; state.ExitCode() != 0 {
		t.Fatalf("child: %s", state)
	}
}

// receiveListener takes the one descriptor sent on channel.
func receiveListener(t *testing.T, channel int) int {
	t.Helper()
	if err := unix.SetsockoptTimeval(channel, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(channel, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		t.Fatalf("recvmsg: %v", err)
	}
	messages, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(messages) != 1 {
		t.Fatalf("control messages %v (%v), want one", messages, err)
	}
	fds, err := unix.ParseUnixRights(&messages[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v (%v), want one descriptor", fds, err)
	}
	return fds[0]
}

func ioctl(fd int, request uint, arg []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(request), uintptr(unsafe.Pointer(&arg[0])))
	if errno != 0 {
		return syscall.Errno(errno)
	}
	return nil
}
