package lockdown

import (
	"encoding/json"
	"errors"

	"golang.org/x/sys/unix"
)

// exitLockdownFailed is the exit status of a process whose lock-down failed.
const exitLockdownFailed = 125

// failure is the line written to the report fd when the lock-down fails.
type failure struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// fail reports err on fd (when fd >= 0) and ends the whole process with status 125. It
// never returns: a process whose lock-down failed must not run anything else.
func fail(fd int, err error) {
	if fd >= 0 {
		line, merr := json.Marshal(failure{Kind: "lockdown_failed", Message: err.Error()})
		if merr == nil {
			writeAll(fd, append(line, '\n'))
		}
	}
	for {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, exitLockdownFailed, 0, 0)
	}
}

// writeAll writes b to fd, best effort: the exit status tells the caller what happened
// even when the report cannot be written, so a write error ends the attempt.
func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}
