package seccomp

// Argument indexes and values that the argument filters compare. The values come from the
// kernel's uapi headers and are the same on x86_64 and aarch64 (both use the generic ioctl
// numbers of asm-generic/ioctls.h for the tty and fd requests below).
//
// Only the low 32 bits of an argument are ever compared: every argument filtered here is an
// int or unsigned int in the kernel (pid, socket domain and protocol, ioctl cmd, prctl option,
// signal number; legacy clone flags are cut with lower_32_bits), so the kernel ignores the
// high word. Comparing it would let a caller put garbage there to take a branch the kernel
// does not see (rt_sigaction(0x1_0000001f) is SIGSYS to the kernel).
const (
	argPID     = 0 // kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: pid / tgid
	argDomain  = 0 // socket(domain, type, protocol)
	argType    = 1 // socket/socketpair type: SOCK_* in the low 4 bits, flags above
	argRequest = 1 // ioctl(fd, request, arg)
	argOption  = 0 // prctl(option, ...)
	argFlags   = 0 // clone(flags, ...): the first argument on x86_64 and aarch64 alike
	argSignum  = 0 // rt_sigaction(signum, act, oldact, sigsetsize)
	argAction  = 1 // a pointer: both words are compared with NULL
)

// Socket families and protocols (include/linux/socket.h, include/uapi/linux/netlink.h).
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
	// sockStream is SOCK_STREAM; sockTypeMask keeps the type and drops SOCK_NONBLOCK and
	// SOCK_CLOEXEC (include/linux/net.h: SOCK_TYPE_MASK).
	sockStream   = 1
	sockTypeMask = 0xf
)

// sigSYS is SIGSYS, the signal of the seccomp reporter.
const sigSYS = 31

// ioctl requests: whether a fd is a tty and its size, bytes readable, non-blocking and
// close-on-exec modes (asm-generic/ioctls.h).
const (
	ioctlTCGETS     = 0x5401
	ioctlTIOCGPGRP  = 0x540f
	ioctlTIOCGWINSZ = 0x5413
	ioctlFIONREAD   = 0x541b
	ioctlFIONBIO    = 0x5421
	ioctlFIONCLEX   = 0x5450
	ioctlFIOCLEX    = 0x5451
)

// prctl options (include/uapi/linux/prctl.h).
const (
	prSetPdeathsig  = 1
	prGetPdeathsig  = 2
	prGetDumpable   = 3
	prSetName       = 15
	prGetName       = 16
	prGetSeccomp    = 21
	prCapbsetRead   = 23
	prGetNoNewPrivs = 39
	prSetVMA        = 0x53564d41 // names anonymous mappings (glibc, V8)
)

// clone flags (include/uapi/linux/sched.h).
const (
	cloneThread    = 0x00010000
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000
	// cloneNewAny is every CLONE_NEW* flag that legacy clone accepts. CLONE_NEWTIME
	// (0x80) is left out: it overlaps CSIGNAL, the exit signal byte of legacy clone, and
	// only clone3 and unshare take it (both are refused).
	cloneNewAny = cloneNewNS | cloneNewCgroup | cloneNewUTS | cloneNewIPC | cloneNewUser |
		cloneNewPID | cloneNewNet
)
