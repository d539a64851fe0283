package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Offsets in struct seccomp_data (include/uapi/linux/seccomp.h): int nr; __u32 arch;
// __u64 instruction_pointer; __u64 args[6]. Both supported arches are little-endian, so the
// low word of args[i] is at offsetArgs + argSize*i.
const (
	offsetNr   = 0
	offsetArch = 4
	offsetArgs = 16
	argSize    = 8
	maxArgs    = 6
)

// Program is a filter assembled for one arch.
type Program struct {
	Arch         Arch
	Instructions []bpf.RawInstruction
	// Skipped lists the policy's names this arch has no system call for (aarch64 has no
	// fork, open or stat, for example): they need no rule there.
	Skipped []string
}

// BuildPolicy assembles the filter of Policy(opts) for arch.
func BuildPolicy(arch Arch, opts Options) (Program, error) {
	return Build(arch, Policy(opts))
}

// Build assembles a filter for arch from rules, in their order:
//
//	ld [arch]; jeq #AUDIT_ARCH, 1, 0; ret KILL_PROCESS       a foreign arch dies first
//	ld [nr];   jset #FOREIGN_ABI_BIT, 0, 1; ret KILL_PROCESS  x32 numbers on x86_64
//	per rule:  jeq #nr, 0, 1; ret ACTION                     or jeq #nr, 0, len; block
//	ret TRAP                                                 anything not named
//
// An argument block ends every path with a ret, so when its jeq skips it the accumulator
// still holds nr for the next rule; every jump stays within a block (at most 255 ahead).
func Build(arch Arch, rules []Rule) (Program, error) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offsetArch, Size: wordSize},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch.AuditArch, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(KillProcess)},
		bpf.LoadAbsolute{Off: offsetNr, Size: wordSize},
	}
	if arch.ForeignABIBit != 0 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: arch.ForeignABIBit, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(KillProcess)})
	}
	seen := make(map[string]bool, len(rules))
	var skipped []string
	for _, rule := range rules {
		if seen[rule.Name] {
			return Program{}, fmt.Errorf("%s: named twice in the policy", rule.Name)
		}
		seen[rule.Name] = true
		nr, ok := arch.Syscalls[rule.Name]
		if !ok {
			if !knownAnywhere(rule.Name) {
				return Program{}, fmt.Errorf("%s: no such system call on any arch", rule.Name)
			}
			skipped = append(skipped, rule.Name)
			continue
		}
		block, err := ruleBlock(nr, rule)
		if err != nil {
			return Program{}, fmt.Errorf("%s: %w", rule.Name, err)
		}
		prog = append(prog, block...)
	}
	prog = append(prog, bpf.RetConstant{Val: uint32(Trap)})

	raw, err := bpf.Assemble(prog)
	if err != nil {
		return Program{}, fmt.Errorf("assemble: %w", err)
	}
	if err := Validate(raw); err != nil {
		return Program{}, err
	}
	return Program{Arch: arch, Instructions: raw, Skipped: skipped}, nil
}

// ruleBlock is "jeq #nr, 0, len(body); body", where body runs the checks in order and
// returns Otherwise when none matched.
func ruleBlock(nr uint32, rule Rule) ([]bpf.Instruction, error) {
	var body []bpf.Instruction
	for _, check := range rule.Checks {
		block, err := checkBlock(check)
		if err != nil {
			return nil, err
		}
		body = append(body, block...)
	}
	body = append(body, bpf.RetConstant{Val: uint32(rule.Otherwise)})
	if len(body) > maxJump {
		return nil, fmt.Errorf("argument block of %d instructions is beyond a jump", len(body))
	}
	head := bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(body))}
	return append([]bpf.Instruction{head}, body...), nil
}

// checkBlock tests each condition in turn (ld low word; and mask; jeq value) and returns the
// check's action when all hold; a failing condition jumps past the ret to the next check.
// Built back to front so that each jump knows how much follows it.
func checkBlock(check Check) ([]bpf.Instruction, error) {
	if len(check.When) == 0 {
		return nil, fmt.Errorf("a check without conditions")
	}
	block := []bpf.Instruction{bpf.RetConstant{Val: uint32(check.Action)}}
	for i := len(check.When) - 1; i >= 0; i-- {
		cond := check.When[i]
		if cond.Arg < 0 || cond.Arg >= maxArgs {
			return nil, fmt.Errorf("argument %d out of range", cond.Arg)
		}
		if cond.Mask == 0 || cond.Value&^cond.Mask != 0 {
			return nil, fmt.Errorf("condition %+v can never or always hold", cond)
		}
		if len(block) > maxJump {
			return nil, fmt.Errorf("check of %d instructions is beyond a jump", len(block))
		}
		part := []bpf.Instruction{
			bpf.LoadAbsolute{Off: uint32(offsetArgs + argSize*cond.Arg), Size: wordSize},
		}
		if cond.Mask != lowWord {
			part = append(part, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: cond.Mask})
		}
		part = append(part, bpf.JumpIf{Cond: bpf.JumpEqual, Val: cond.Value, SkipFalse: uint8(len(block))})
		block = append(part, block...)
	}
	return block, nil
}

// knownAnywhere reports whether any supported arch has a system call of that name.
func knownAnywhere(name string) bool {
	for _, arch := range Arches {
		if _, ok := arch.Syscalls[name]; ok {
			return true
		}
	}
	return false
}
