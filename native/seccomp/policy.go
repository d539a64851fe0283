package seccomp

// Options are the inputs of the policy that are known only when the process locks down.
type Options struct {
	// Network allows outgoing IPv4 and IPv6 connections.
	Network bool
	// PID is the locked process's own pid: the only target kill and its kin may signal.
	PID uint32
	// Notify hands every refused call (EPERM, and the default TRAP) to the filter's listener
	// instead: the gateway names it, then answers EPERM or kills the process, as the policy says
	// (Refusals). ENOSYS answers stay in the kernel: glibc meets clone3's on every new thread.
	Notify bool
}

// Rule decides one system call by name. The first check whose conditions all hold gives the
// action; when none does (or there are no checks), Otherwise does.
type Rule struct {
	Name      string
	Checks    []Check
	Otherwise Action
	// Frequent rules are tested first, one after another in policy order; the others are
	// found by a binary search on the number.
	Frequent bool
}

// Check is a conjunction of argument conditions and the action taken when all hold.
type Check struct {
	When   []Cond
	Action Action
}

// Cond holds when the low 32 bits of argument Arg (the high 32 bits with High), masked
// with Mask, equal Value. Int arguments are compared on their low word only (see args.go);
// a pointer compared with NULL needs a condition on each word.
type Cond struct {
	Arg   int
	High  bool
	Mask  uint32
	Value uint32
}

// lowWord is the mask of a condition that compares the whole low word.
const lowWord = 0xffffffff

// Policy returns the rules of the filter, the most frequent system calls first. Calls not
// named here are trapped (the default action): the process dies by SIGSYS after reporting
// the call. The allowed calls are those that Python and Node workloads were recorded making
// after the lock-down (scripts/record-syscalls.sh), what the Go runtime inside the library
// needs, and their siblings (the legacy x86_64 call, the *at or v2 variant) so that the same
// kernel operation is not killed through another door; see native/README.md.
func Policy(opts Options) []Rule {
	rules := make([]Rule, 0, policySize)
	add := func(action Action, names ...string) {
		for _, name := range names {
			rules = append(rules, Rule{Name: name, Otherwise: action})
		}
	}

	// The hot path, tested first and in this order: what interpreters and the Go runtime
	// call most. (Since Linux 5.11 the kernel skips the filter for calls it always allows,
	// so the order matters most for the argument-filtered tgkill, with which Go preempts.)
	for _, name := range []string{"read", "write", "futex", "epoll_pwait", "mmap", "munmap",
		"mprotect", "madvise", "close", "openat", "newfstatat", "fstat", "rt_sigprocmask",
		"rt_sigreturn", "getpid", "gettid"} {
		rules = append(rules, Rule{Name: name, Otherwise: Allow, Frequent: true})
	}
	rules = append(rules, signalRules(opts)...)
	rules = append(rules, threadRule(), ioctlRule(), prctlRule())
	add(ENOSYS, "clone3") // glibc falls back to clone, whose flags the filter can see

	// Memory, time and the Go runtime: its export's return path (rt_sigprocmask above,
	// sigaltstack) and background threads (futex, nanosleep, epoll_pwait, madvise,
	// sched_yield, mmap, tgkill).
	add(Allow, "brk", "mremap", "msync", "pkey_mprotect", "pkey_alloc", "pkey_free",
		"sigaltstack", "sched_yield", "clock_gettime", "clock_getres", "gettimeofday",
		"time", "clock_nanosleep", "nanosleep")
	// Threads and process life: pthread_create and thread exit, exit, and waiting for
	// children (there can be none: fork is refused). getcpu: x86_64 answers it from the
	// vDSO, aarch64 with the system call.
	add(Allow, "set_robust_list", "rseq", "exit", "exit_group", "restart_syscall",
		"sched_getaffinity", "sched_getparam", "sched_getscheduler", "getcpu", "wait4", "waitid")
	// Files: chroot and the unprivileged uid protect them, so the usual calls are allowed.
	add(Allow, "open", "creat", "stat", "lstat", "statx", "access", "faccessat",
		"faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir",
		"fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
		"renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
		"fchmodat", "fchmodat2", "truncate", "ftruncate", "fallocate", "fsync", "fdatasync",
		"utimensat", "umask", "statfs", "fstatfs", "flock", "fadvise64", "lseek", "pread64",
		"pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
		"sendfile", "copy_file_range", "fcntl", "close_range", "dup", "dup2", "dup3",
		"pipe", "pipe2",
		// Reading extended attributes (shutil.copy2 lists them); setting them is refused.
		"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr")
	// Event loops, timers and signals to oneself (libuv, asyncio, the Go netpoller).
	add(Allow, "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait2",
		"poll", "ppoll", "select", "pselect6", "eventfd", "eventfd2", "alarm", "getitimer",
		"setitimer", "pause", "rt_sigsuspend", "rt_sigpending", "rt_sigtimedwait")
	// Facts about the process and the machine. setrlimit and prlimit64 cannot raise a hard
	// limit without CAP_SYS_RESOURCE, nor touch another uid's processes.
	add(Allow, "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
		"getgroups", "getppid", "getpgrp", "capget", "uname", "sysinfo", "getrusage",
		"times", "getrandom", "getrlimit", "setrlimit", "prlimit64")
	// NUMA memory policy: OpenBLAS (numpy's BLAS) binds its thread buffers to a node with
	// mbind. Placement is the host's business, not a function's, so these fail as in a kernel
	// built without NUMA, and callers fall back to the default placement.
	add(ENOSYS, "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node",
		"migrate_pages", "move_pages")
	rules = append(rules, networkRules(opts)...)
	rules = append(rules, refusedRules()...)
	return rules
}

// policySize is about the number of rules, to allocate them at once.
const policySize = 320

// signalRules lets kill and its kin target only the process itself (a pid is an int: low
// word only); tkill names a thread of any process and has no tgid to check, so it is refused
// (glibc and Go use tgkill). User code must not replace the SIGSYS reporter, but may ask
// what it is.
func signalRules(opts Options) []Rule {
	own := []Check{{When: []Cond{{Arg: argPID, Mask: lowWord, Value: opts.PID}}, Action: Allow}}
	return []Rule{
		{Name: "tgkill", Checks: own, Otherwise: EPERM, Frequent: true},
		{Name: "rt_sigaction", Checks: []Check{
			{When: []Cond{ // a query, act == NULL: Node asks about every signal at exit
				{Arg: argSignum, Mask: lowWord, Value: sigSYS},
				{Arg: argAction, Mask: lowWord, Value: 0},
				{Arg: argAction, High: true, Mask: lowWord, Value: 0},
			}, Action: Allow},
			{When: []Cond{{Arg: argSignum, Mask: lowWord, Value: sigSYS}}, Action: EPERM},
		}, Otherwise: Allow},
		{Name: "kill", Checks: own, Otherwise: EPERM},
		{Name: "rt_sigqueueinfo", Checks: own, Otherwise: EPERM},
		{Name: "rt_tgsigqueueinfo", Checks: own, Otherwise: EPERM},
		{Name: "tkill", Otherwise: EPERM},
	}
}

// threadRule allows clone only for threads: CLONE_THREAD set and no CLONE_NEW* flag
// (legacy clone flags are cut to 32 bits by the kernel). Fork and namespaces get EPERM.
func threadRule() Rule {
	return Rule{Name: "clone", Checks: []Check{{
		When:   []Cond{{Arg: argFlags, Mask: cloneThread | cloneNewAny, Value: cloneThread}},
		Action: Allow,
	}}, Otherwise: EPERM}
}

// ioctlRule allows the tty queries and fd mode requests that interpreters make on their
// own descriptors (request is an unsigned int: low word only); anything else is EPERM.
func ioctlRule() Rule {
	return oneOf("ioctl", argRequest, Allow, EPERM, ioctlTCGETS, ioctlTIOCGWINSZ,
		ioctlTIOCGPGRP, ioctlFIONREAD, ioctlFIONBIO, ioctlFIOCLEX, ioctlFIONCLEX)
}

// prctlRule allows thread names, mapping names and read-only queries (option is an int:
// low word only); PR_SET_DUMPABLE, PR_SET_SECCOMP, capability changes... get EPERM, and so
// does PR_SET_PDEATHSIG: clearing the SIGKILL the lock-down set would let a function outlive
// a gateway that dies, and with it its deadline.
func prctlRule() Rule {
	return oneOf("prctl", argOption, Allow, EPERM, prSetName, prGetName, prSetVMA,
		prGetDumpable, prGetPdeathsig, prCapbsetRead, prGetNoNewPrivs, prGetSeccomp)
}

// networkRules: functions are clients. Without network the only sockets a sandbox can hold
// are its channels (fds 0-4, AF_UNIX stream pairs made by the gateway) and AF_UNIX stream
// pairs of its own (asyncio's self-pipe, a Python async handler needs one); the calls on
// existing sockets are allowed, since a connected stream socket ignores any address given
// to sendto/sendmsg. With network, IPv4/IPv6 sockets can be created and connected. Never:
// any other family (AF_UNIX sockets can reach abstract names, which ignore the chroot;
// netlink route dumps list the host's interfaces, addresses, routes and neighbours, MAC
// addresses included, and glibc's getaddrinfo does without them: AI_ADDRCONFIG then
// assumes both families), socketpair of another type (a datagram pair could send to an
// abstract name), bind, listen and accept.
func networkRules(opts Options) []Rule {
	onSockets := []string{"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
		"getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown"}
	rules := []Rule{{Name: "socketpair", Checks: []Check{{When: []Cond{
		{Arg: argDomain, Mask: lowWord, Value: afUnix},
		{Arg: argType, Mask: sockTypeMask, Value: sockStream},
	}, Action: Allow}}, Otherwise: EPERM}}
	for _, name := range onSockets {
		rules = append(rules, Rule{Name: name, Otherwise: Allow})
	}
	never := []string{"bind", "listen", "accept", "accept4"}
	if opts.Network {
		rules = append(rules, Rule{Name: "socket", Checks: []Check{
			{When: []Cond{{Arg: argDomain, Mask: lowWord, Value: afInet}}, Action: Allow},
			{When: []Cond{{Arg: argDomain, Mask: lowWord, Value: afInet6}}, Action: Allow},
		}, Otherwise: EPERM}, Rule{Name: "connect", Otherwise: Allow})
	} else {
		never = append(never, "socket", "connect")
	}
	for _, name := range never {
		rules = append(rules, Rule{Name: name, Otherwise: EPERM})
	}
	return rules
}

// refusedRules are what user code may reasonably try and must not do: each fails with
// EPERM so that the user sees a clean exception rather than a killed process.
func refusedRules() []Rule {
	groups := [][]string{
		// New processes and programs.
		{"fork", "vfork", "execve", "execveat"},
		// Identity and privileges.
		{"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
			"setfsuid", "setfsgid", "capset"},
		// Mounts, roots and namespaces.
		{"mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree",
			"move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"},
		// Other processes.
		{"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open",
			"pidfd_send_signal", "pidfd_getfd", "process_madvise", "kcmp"},
		// Sessions and process groups, execution domain; facts about other processes.
		{"setpgid", "setsid", "personality", "getpgid", "getsid", "getpriority"},
		// File watches (Node's fs.watch): nothing in a jail changes but what the function
		// writes itself.
		{"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch"},
		// Kernel attack surface: filters, BPF, perf, userfaultfd, io_uring, keys, landlock.
		{"seccomp", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
			"io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key",
			"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"},
		// The machine: power, kernel images and modules, swap, accounting, names, clocks.
		{"reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
			"delete_module", "swapon", "swapoff", "acct", "sethostname", "setdomainname",
			"settimeofday", "clock_settime", "adjtimex", "clock_adjtime"},
		// File handles bypass path checks; fanotify watches the whole mount.
		{"open_by_handle_at", "name_to_handle_at", "fanotify_init"},
		// Device nodes and FIFOs; ownership changes (an unprivileged uid owns nothing else).
		{"mknod", "mknodat", "chown", "fchown", "lchown", "fchownat"},
		// Extended attributes are metadata a function has no need to write.
		{"setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
			"fremovexattr"},
		// Scheduling and memory locking beyond the process's share.
		{"setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
			"sched_setattr", "ioprio_set", "mlock", "mlock2", "mlockall"},
		// System V IPC lives outside the jail and the cgroup.
		{"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
			"msgget", "msgsnd", "msgrcv", "msgctl"},
	}
	var rules []Rule
	for _, group := range groups {
		for _, name := range group {
			rules = append(rules, Rule{Name: name, Otherwise: EPERM})
		}
	}
	return rules
}

// oneOf is a rule that takes action when argument arg equals one of values, else otherwise.
func oneOf(name string, arg int, action, otherwise Action, values ...uint32) Rule {
	checks := make([]Check, 0, len(values))
	for _, v := range values {
		checks = append(checks, Check{When: []Cond{{Arg: arg, Mask: lowWord, Value: v}}, Action: action})
	}
	return Rule{Name: name, Checks: checks, Otherwise: otherwise}
}
