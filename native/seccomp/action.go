package seccomp

import "fmt"

// Action is a seccomp filter return value (SECCOMP_RET_*): what the kernel does with a call.
type Action uint32

// The SECCOMP_RET_* values from include/uapi/linux/seccomp.h.
const (
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retUserNotif   = 0x7fc00000
	retErrno       = 0x00050000
	retAllow       = 0x7fff0000
	retDataMask    = 0x0000ffff // SECCOMP_RET_DATA: the errno of a RET_ERRNO
)

// Errno values; asm-generic/errno-base.h and errno.h, the same on x86_64 and aarch64.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// The actions the policy uses.
const (
	// Allow lets the call through.
	Allow Action = retAllow
	// EPERM fails the call with EPERM: a clean exception for what user code may try.
	EPERM Action = retErrno | errnoEPERM
	// ENOSYS fails the call as if the kernel lacked it (clone3: glibc falls back to clone).
	ENOSYS Action = retErrno | errnoENOSYS
	// Trap sends SIGSYS to the calling thread; the reporter names the call and dies by it.
	Trap Action = retTrap
	// KillProcess kills the whole process at once, with no handler.
	KillProcess Action = retKillProcess
	// Notify hands the call to the filter's listener (SECCOMP_RET_USER_NOTIF), held by the
	// gateway, which names it and answers it (EPERM) or kills the process.
	Notify Action = retUserNotif
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case EPERM:
		return "EPERM"
	case ENOSYS:
		return "ENOSYS"
	case Trap:
		return "TRAP"
	case KillProcess:
		return "KILL_PROCESS"
	case Notify:
		return "USER_NOTIF"
	}
	if uint32(a)&^retDataMask == retErrno {
		return fmt.Sprintf("ERRNO(%d)", uint32(a)&retDataMask)
	}
	return fmt.Sprintf("Action(%#x)", uint32(a))
}
