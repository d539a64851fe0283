package seccomp

import (
	"fmt"
	"runtime"
)

// Arch is one architecture as a seccomp filter sees it: the audit arch the kernel puts in
// seccomp_data.arch and the numbers of its system calls.
type Arch struct {
	Name      string
	AuditArch uint32
	// ForeignABIBit, when non-zero, marks numbers of another ABI on this arch (x86_64's
	// x32 ABI, which shares AUDIT_ARCH_X86_64); the filter kills any number that has it set.
	ForeignABIBit uint32
	// Syscalls maps each system call name to its number on this arch.
	Syscalls map[string]uint32
}

// Audit arches (include/uapi/linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
const (
	auditArchX86_64  = 0xc000003e
	auditArchAarch64 = 0xc00000b7
	// x32SyscallBit is __X32_SYSCALL_BIT (arch/x86/include/uapi/asm/unistd.h).
	x32SyscallBit = 0x40000000
)

// X86_64 is the x86_64 (amd64) architecture.
var X86_64 = Arch{
	Name:          "x86_64",
	AuditArch:     auditArchX86_64,
	ForeignABIBit: x32SyscallBit,
	Syscalls:      syscallsX86_64,
}

// Aarch64 is the aarch64 (arm64) architecture.
var Aarch64 = Arch{
	Name:      "aarch64",
	AuditArch: auditArchAarch64,
	Syscalls:  syscallsAarch64,
}

// Arches lists every architecture the generator supports.
var Arches = []Arch{X86_64, Aarch64}

// Native returns the architecture this program was compiled for.
func Native() (Arch, error) {
	switch runtime.GOARCH {
	case "amd64":
		return X86_64, nil
	case "arm64":
		return Aarch64, nil
	}
	return Arch{}, fmt.Errorf("unsupported architecture %s", runtime.GOARCH)
}

// Names returns the system call names of this arch indexed by number.
func (a Arch) Names() map[uint32]string {
	names := make(map[uint32]string, len(a.Syscalls))
	for name, nr := range a.Syscalls {
		names[nr] = name
	}
	return names
}

// MaxSyscall bounds the system call numbers of every table (the highest is below 500):
// the SIGSYS reporter's name table has this many slots.
const MaxSyscall = 1024

// DieSyscall is an unallocated system call number on every supported arch (and without the
// x32 bit): the filter traps it, which the SIGSYS reporter uses to die by SIGSYS.
const DieSyscall = 0x3fff
