package seccomp

import (
	"slices"
	"testing"
)

const (
	testPID    = 4242
	otherPID   = 1
	highGarbag = 0xdead_0000_0000 // set in the high word of an argument; the kernel ignores it
	auditI386  = 0x40000003       // AUDIT_ARCH_I386: int 0x80 on x86_64
)

var allOptions = []Options{{Network: false, PID: testPID}, {Network: true, PID: testPID}}

func build(t *testing.T, arch Arch, opts Options) Program {
	t.Helper()
	prog, err := BuildPolicy(arch, opts)
	if err != nil {
		t.Fatalf("%s %+v: %v", arch.Name, opts, err)
	}
	return prog
}

// call runs the filter of arch for one system call by name.
func call(t *testing.T, prog Program, name string, args ...uint64) Action {
	t.Helper()
	nr, ok := prog.Arch.Syscalls[name]
	if !ok {
		t.Fatalf("%s has no %s", prog.Arch.Name, name)
	}
	d := seccompData{nr: nr, arch: prog.Arch.AuditArch}
	copy(d.args[:], args)
	action, _, err := run(prog.Instructions, d)
	if err != nil {
		t.Fatalf("%s(%v): %v", name, args, err)
	}
	return action
}

func TestArchCheckComesFirstAndKills(t *testing.T) {
	for _, arch := range Arches {
		prog := build(t, arch, allOptions[0])
		first := prog.Instructions[0]
		if first.Op != opLoadAbsWord || first.K != offsetArch {
			t.Errorf("%s: first instruction %+v does not load the arch", arch.Name, first)
		}
		for _, foreign := range []uint32{auditArchX86_64, auditArchAarch64, auditI386, 0} {
			if foreign == arch.AuditArch {
				continue
			}
			d := seccompData{nr: arch.Syscalls["read"], arch: foreign}
			action, steps, err := run(prog.Instructions, d)
			if err != nil || action != KillProcess || steps != 3 {
				t.Errorf("%s: arch %#x gave %v after %d steps (%v), want KILL_PROCESS after 3",
					arch.Name, foreign, action, steps, err)
			}
		}
	}
}

func TestX32NumbersKill(t *testing.T) {
	prog := build(t, X86_64, allOptions[1])
	for _, name := range []string{"read", "write", "futex", "syslog"} {
		d := seccompData{nr: x32SyscallBit | X86_64.Syscalls[name], arch: auditArchX86_64}
		if action, _, err := run(prog.Instructions, d); err != nil || action != KillProcess {
			t.Errorf("x32 %s: %v (%v), want KILL_PROCESS", name, action, err)
		}
	}
	// aarch64 has no such ABI: the same number is just unknown.
	arm := build(t, Aarch64, allOptions[1])
	d := seccompData{nr: x32SyscallBit, arch: auditArchAarch64}
	if action, _, err := run(arm.Instructions, d); err != nil || action != Trap {
		t.Errorf("aarch64 %#x: %v (%v), want TRAP", x32SyscallBit, action, err)
	}
}

func TestJumpsStayInsideTheProgram(t *testing.T) {
	for _, arch := range Arches {
		for _, opts := range allOptions {
			prog := build(t, arch, opts)
			n := len(prog.Instructions)
			if n > maxInstructions {
				t.Errorf("%s: %d instructions", arch.Name, n)
			}
			for pc, ins := range prog.Instructions {
				switch ins.Op {
				case opJumpEqConst, opJumpSet, opJumpGEConst:
					if pc+1+int(ins.Jt) >= n || pc+1+int(ins.Jf) >= n {
						t.Errorf("%s pc %d: %+v jumps outside %d instructions", arch.Name, pc, ins, n)
					}
				case opJumpAlways:
					if pc+1+int(ins.K) >= n {
						t.Errorf("%s pc %d: %+v jumps outside %d instructions", arch.Name, pc, ins, n)
					}
				}
			}
			if err := Validate(prog.Instructions); err != nil {
				t.Errorf("%s: %v", arch.Name, err)
			}
			if last := prog.Instructions[n-1]; last.Op != opRetConst {
				t.Errorf("%s: the program does not end in a ret: %+v", arch.Name, last)
			}
		}
	}
}

// argVectors returns arguments that satisfy each check of rule in turn, and ones that
// satisfy none, each also with garbage in the high words.
func argVectors(rule Rule) [][maxArgs]uint64 {
	var none [maxArgs]uint64
	for i := range none {
		none[i] = 0x7777_7777
	}
	vectors := [][maxArgs]uint64{none}
	for _, check := range rule.Checks {
		args := none
		for _, cond := range check.When {
			if cond.High {
				high := uint32(args[cond.Arg]>>32)&^cond.Mask | cond.Value
				args[cond.Arg] = uint64(high)<<32 | args[cond.Arg]&lowWord
			} else {
				args[cond.Arg] = args[cond.Arg]&^lowWord | uint64(uint32(args[cond.Arg])&^cond.Mask|cond.Value)
			}
		}
		vectors = append(vectors, args)
	}
	for _, v := range slices.Clone(vectors) {
		for i := range v {
			v[i] |= highGarbag // conditions on a high word see it: expect() decides
		}
		vectors = append(vectors, v)
	}
	return vectors
}

func TestEveryTableEntryGetsItsIntendedAction(t *testing.T) {
	for _, arch := range Arches {
		for _, opts := range allOptions {
			prog := build(t, arch, opts)
			rules := Policy(opts)
			byName := map[string]Rule{}
			for _, rule := range rules {
				byName[rule.Name] = rule
			}
			for name := range arch.Syscalls {
				rule, named := byName[name]
				if !named {
					if got := call(t, prog, name); got != Trap {
						t.Errorf("%s %s: %v, want TRAP (not in the policy)", arch.Name, name, got)
					}
					continue
				}
				for _, args := range argVectors(rule) {
					if got, want := call(t, prog, name, args[:]...), expect(rule, args); got != want {
						t.Errorf("%s net=%v %s%x: %v, want %v", arch.Name, opts.Network, name, args, got, want)
					}
				}
			}
			for _, name := range prog.Skipped {
				if _, ok := arch.Syscalls[name]; ok {
					t.Errorf("%s: %s skipped but present", arch.Name, name)
				}
			}
		}
	}
}

func TestUnallocatedNumbersTrap(t *testing.T) {
	for _, arch := range Arches {
		prog := build(t, arch, allOptions[1])
		names := arch.Names()
		for nr := uint32(0); nr < 0x4000; nr++ {
			if _, ok := names[nr]; ok {
				continue
			}
			action, _, err := run(prog.Instructions, seccompData{nr: nr, arch: arch.AuditArch})
			if err != nil || action != Trap {
				t.Fatalf("%s nr %d: %v (%v), want TRAP", arch.Name, nr, action, err)
			}
		}
	}
}

func TestPlainActions(t *testing.T) {
	cases := map[string]Action{
		"read": Allow, "write": Allow, "futex": Allow, "mmap": Allow, "openat": Allow,
		"exit_group": Allow, "rt_sigreturn": Allow, "sigaltstack": Allow, "rt_sigprocmask": Allow,
		"epoll_pwait": Allow, "nanosleep": Allow, "madvise": Allow, "getpid": Allow,
		"fork": EPERM, "vfork": EPERM, "execve": EPERM, "execveat": EPERM, "ptrace": EPERM,
		"mount": EPERM, "umount2": EPERM, "chroot": EPERM, "pivot_root": EPERM,
		"unshare": EPERM, "setns": EPERM, "setuid": EPERM, "setresuid": EPERM,
		"setgroups": EPERM, "capset": EPERM, "seccomp": EPERM, "bpf": EPERM,
		"io_uring_setup": EPERM, "keyctl": EPERM, "acct": EPERM, "reboot": EPERM,
		"mknodat": EPERM, "tkill": EPERM, "socketpair": EPERM, "listen": EPERM,
		"accept4": EPERM, "pidfd_open": EPERM, "process_vm_readv": EPERM,
		"open_by_handle_at": EPERM, "setsid": EPERM, "personality": EPERM,
		"clone3": ENOSYS, "mbind": ENOSYS, "set_mempolicy": ENOSYS, "get_mempolicy": ENOSYS,
		"migrate_pages": ENOSYS, "move_pages": ENOSYS,
		"syslog": Trap, "kcmp": EPERM, "vmsplice": Trap, "inotify_init1": EPERM,
		"memfd_create": Trap, "getsid": EPERM,
	}
	for _, arch := range Arches {
		for _, opts := range allOptions {
			prog := build(t, arch, opts)
			for name, want := range cases {
				if _, ok := arch.Syscalls[name]; !ok {
					continue // fork, vfork: x86_64 only
				}
				if got := call(t, prog, name); got != want {
					t.Errorf("%s net=%v %s: %v, want %v", arch.Name, opts.Network, name, got, want)
				}
			}
		}
	}
}

func TestSkippedNamesAreExplicit(t *testing.T) {
	prog := build(t, Aarch64, allOptions[0])
	for _, name := range []string{"fork", "vfork", "open", "stat", "epoll_wait", "pipe"} {
		if !slices.Contains(prog.Skipped, name) {
			t.Errorf("aarch64: %s not reported as skipped (%v)", name, prog.Skipped)
		}
	}
	if x := build(t, X86_64, allOptions[0]); len(x.Skipped) != 0 {
		t.Errorf("x86_64 skipped %v", x.Skipped)
	}
}

// Frequent calls are decided at the head of the program; every other call, named or not,
// after a binary search, in a few dozen instructions.
func TestEveryCallIsDecidedQuickly(t *testing.T) {
	const frequentSteps, anySteps = 48, 64
	for _, arch := range Arches {
		for _, opts := range allOptions {
			prog := build(t, arch, opts)
			frequent := map[string]bool{}
			for _, rule := range Policy(opts) {
				frequent[rule.Name] = rule.Frequent
			}
			names := arch.Names()
			most := 0
			for nr := uint32(0); nr < MaxSyscall; nr++ {
				name := names[nr]
				_, steps, err := run(prog.Instructions, seccompData{nr: nr, arch: arch.AuditArch})
				if err != nil {
					t.Fatalf("%s nr %d: %v", arch.Name, nr, err)
				}
				if steps > anySteps || frequent[name] && steps > frequentSteps {
					t.Errorf("%s %d %s: decided after %d instructions", arch.Name, nr, name, steps)
				}
				most = max(most, steps)
			}
			t.Logf("%s network=%v: %d instructions, every call decided within %d",
				arch.Name, opts.Network, len(prog.Instructions), most)
			for _, name := range []string{"read", "write", "futex", "mmap"} {
				d := seccompData{nr: arch.Syscalls[name], arch: arch.AuditArch}
				if _, steps, _ := run(prog.Instructions, d); steps > 16 {
					t.Errorf("%s %s: decided after %d instructions", arch.Name, name, steps)
				}
			}
		}
	}
}

func TestDieSyscallTraps(t *testing.T) {
	if DieSyscall&x32SyscallBit != 0 || DieSyscall >= x32SyscallBit {
		t.Fatalf("DieSyscall %#x has the x32 bit", DieSyscall)
	}
	for _, arch := range Arches {
		if _, taken := arch.Names()[DieSyscall]; taken {
			t.Errorf("%s: %#x is allocated", arch.Name, DieSyscall)
		}
		for _, opts := range allOptions {
			prog := build(t, arch, opts)
			action, _, err := run(prog.Instructions, seccompData{nr: DieSyscall, arch: arch.AuditArch})
			if err != nil || action != Trap {
				t.Errorf("%s: %#x gave %v (%v), want TRAP", arch.Name, DieSyscall, action, err)
			}
		}
	}
}

// The Notify variant answers every call as the TRAP variant does, except that what the latter
// refuses with EPERM or traps goes to the listener: the same calls are allowed, ENOSYS stays in
// the kernel, foreign arches and ABIs are killed in the kernel.
func TestNotifyVariantRefusesTheSameCalls(t *testing.T) {
	for _, arch := range Arches {
		for _, opts := range allOptions {
			trap := build(t, arch, opts)
			notified := opts
			notified.Notify = true
			notify := build(t, arch, notified)
			byName := map[string]Rule{}
			for _, rule := range Policy(opts) {
				byName[rule.Name] = rule
			}
			for name := range arch.Syscalls {
				vectors := [][6]uint64{{}}
				if rule, ok := byName[name]; ok {
					vectors = argVectors(rule)
				}
				for _, args := range vectors {
					want := call(t, trap, name, args[:]...)
					if want == EPERM || want == Trap {
						want = Notify
					}
					if got := call(t, notify, name, args[:]...); got != want {
						t.Errorf("%s net=%v %s%x: %v, want %v", arch.Name, opts.Network, name, args, got, want)
					}
				}
			}
			for nr := uint32(0); nr < 0x4000; nr += 97 {
				if _, named := arch.Names()[nr]; named {
					continue
				}
				if action, _, err := run(notify.Instructions, seccompData{nr: nr, arch: arch.AuditArch}); err != nil || action != Notify {
					t.Fatalf("%s nr %d: %v (%v), want USER_NOTIF", arch.Name, nr, action, err)
				}
			}
			d := seccompData{nr: arch.Syscalls["read"], arch: auditI386}
			if action, _, err := run(notify.Instructions, d); err != nil || action != KillProcess {
				t.Errorf("%s: a foreign arch gave %v (%v), want KILL_PROCESS", arch.Name, action, err)
			}
		}
	}
}
