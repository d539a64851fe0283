package seccomp

import (
	"strings"
	"testing"
)

func TestBuildRejectsBadRules(t *testing.T) {
	cases := map[string][]Rule{
		"no such system call": {{Name: "reed", Otherwise: Allow}},
		"named twice":         {{Name: "read", Otherwise: Allow}, {Name: "read", Otherwise: EPERM}},
		"argument 6 out of range": {{Name: "ioctl", Otherwise: EPERM,
			Checks: []Check{{When: []Cond{{Arg: maxArgs, Mask: lowWord}}, Action: Allow}}}},
		"can never or always hold": {{Name: "ioctl", Otherwise: EPERM,
			Checks: []Check{{When: []Cond{{Arg: 1, Mask: 0xf, Value: 0x10}}, Action: Allow}}}},
		"without conditions": {{Name: "ioctl", Otherwise: EPERM, Checks: []Check{{Action: Allow}}}},
		"beyond a jump":      {oneOf("ioctl", argRequest, Allow, EPERM, make([]uint32, 100)...)},
	}
	for want, rules := range cases {
		_, err := Build(X86_64, rules)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v", want, err)
		}
	}
}

func TestTablesAreConsistent(t *testing.T) {
	anchors := map[string][2]uint32{ // x86_64, aarch64
		"read": {0, 63}, "write": {1, 64}, "openat": {257, 56}, "clone": {56, 220},
		"clone3": {435, 435}, "seccomp": {317, 277}, "exit_group": {231, 94}, "syslog": {103, 116},
	}
	for name, nrs := range anchors {
		if X86_64.Syscalls[name] != nrs[0] || Aarch64.Syscalls[name] != nrs[1] {
			t.Errorf("%s: %d/%d, want %d/%d", name, X86_64.Syscalls[name], Aarch64.Syscalls[name], nrs[0], nrs[1])
		}
	}
	for _, arch := range Arches {
		if names := arch.Names(); len(names) != len(arch.Syscalls) {
			t.Errorf("%s: %d names share %d numbers", arch.Name, len(arch.Syscalls), len(names))
		}
		for name, nr := range arch.Syscalls {
			if nr >= MaxSyscall {
				t.Errorf("%s: %s = %d is beyond MaxSyscall", arch.Name, name, nr)
			}
		}
	}
}

func TestCountsAddUp(t *testing.T) {
	for _, arch := range Arches {
		for _, opts := range allOptions {
			rules := Policy(opts)
			c := Count(arch, rules)
			if c.Allow+c.EPERM+c.ENOSYS+c.ArgFiltered+c.Trapped != len(arch.Syscalls) ||
				c.Skipped+c.Allow+c.EPERM+c.ENOSYS+c.ArgFiltered != len(rules) {
				t.Errorf("%s: %+v does not add up to %d syscalls, %d rules", arch.Name, c, len(arch.Syscalls), len(rules))
			}
			t.Logf("%s network=%v: %+v", arch.Name, opts.Network, c)
		}
	}
}
