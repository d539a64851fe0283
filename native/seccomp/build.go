package seccomp

import (
	"cmp"
	"fmt"
	"slices"

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

// leafRules is the most rules a leaf of the search tree tests one after another.
const leafRules = 8

// numbered is a rule with the arch's number for its system call.
type numbered struct {
	nr   uint32
	rule Rule
}

// Build assembles a filter for arch from rules:
//
//	ld [arch]; jeq #AUDIT_ARCH, 1, 0; ret KILL_PROCESS       a foreign arch dies first
//	ld [nr];   jset #FOREIGN_ABI_BIT, 0, 1; ret KILL_PROCESS  x32 numbers on x86_64
//	per Frequent rule, in policy order:                      the hot path
//	    jeq #nr, 0, 1; ret ACTION                            or jeq #nr, 0, len; block
//	a binary search on nr over the other rules:
//	    jge #mid, 0, 1; ja right; <left half>; <right half>
//	    leaves: up to leafRules "jeq" rules, then ret TRAP    anything not named
//
// An argument block ends every path with a ret, so when its jeq skips it the accumulator
// still holds nr for the next rule; conditional jumps stay within a block or a tree node
// (at most 255 ahead), and only ja (32-bit offset) crosses half of the tree. The search
// keeps the kernel's work small: at load time it runs the filter once per syscall number
// to find the always-allowed ones, and a linear chain of ~300 rules made that ~0.35 ms.
func Build(arch Arch, rules []Rule) (Program, error) {
	prog := make([]bpf.Instruction, 0, 3*len(rules))
	prog = append(prog,
		bpf.LoadAbsolute{Off: offsetArch, Size: wordSize},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch.AuditArch, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(KillProcess)},
		bpf.LoadAbsolute{Off: offsetNr, Size: wordSize})
	if arch.ForeignABIBit != 0 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: arch.ForeignABIBit, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(KillProcess)})
	}
	seen := make(map[string]bool, len(rules))
	others := make([]numbered, 0, len(rules))
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
		if !rule.Frequent {
			others = append(others, numbered{nr: nr, rule: rule})
			continue
		}
		block, err := ruleBlock(nr, rule)
		if err != nil {
			return Program{}, fmt.Errorf("%s: %w", rule.Name, err)
		}
		prog = append(prog, block...)
	}
	slices.SortFunc(others, func(a, b numbered) int { return cmp.Compare(a.nr, b.nr) })
	tree, err := searchTree(others)
	if err != nil {
		return Program{}, err
	}
	prog = append(prog, tree...)

	raw, err := bpf.Assemble(prog)
	if err != nil {
		return Program{}, fmt.Errorf("assemble: %w", err)
	}
	if err := Validate(raw); err != nil {
		return Program{}, err
	}
	return Program{Arch: arch, Instructions: raw, Skipped: skipped}, nil
}

// searchTree decides rules (sorted by number) with a binary search; every path ends in a
// ret, TRAP when no rule has the number.
func searchTree(rules []numbered) ([]bpf.Instruction, error) {
	if len(rules) <= leafRules {
		return leaf(rules)
	}
	mid := len(rules) / 2
	left, err := searchTree(rules[:mid])
	if err != nil {
		return nil, err
	}
	right, err := searchTree(rules[mid:])
	if err != nil {
		return nil, err
	}
	node := []bpf.Instruction{
		// nr >= the first number of the right half: over the ja into the left half
		// when false, else take the ja over the left half.
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: rules[mid].nr, SkipFalse: 1},
		bpf.Jump{Skip: uint32(len(left))},
	}
	node = append(node, left...)
	return append(node, right...), nil
}

// leaf tests a few rules one after another: a rule without argument checks is one
// "jeq #nr, <ret of its action>, 0" to a ret shared within the leaf; argument blocks
// follow; then ret TRAP for a number no rule has, and the shared rets.
func leaf(rules []numbered) ([]bpf.Instruction, error) {
	var plain []numbered
	var blocks []bpf.Instruction
	for _, r := range rules {
		if len(r.rule.Checks) == 0 {
			plain = append(plain, r)
			continue
		}
		block, err := ruleBlock(r.nr, r.rule)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.rule.Name, err)
		}
		blocks = append(blocks, block...)
	}
	var rets []Action
	out := make([]bpf.Instruction, 0, len(plain)+len(blocks)+1+len(rules))
	for i, r := range plain {
		at := slices.Index(rets, r.rule.Otherwise)
		if at < 0 {
			at = len(rets)
			rets = append(rets, r.rule.Otherwise)
		}
		// From the next instruction: the rest of the jeqs, the blocks, ret TRAP, then rets.
		skip := len(plain) - 1 - i + len(blocks) + 1 + at
		if skip > maxJump {
			return nil, fmt.Errorf("%s: leaf of %d instructions is beyond a jump", r.rule.Name, skip)
		}
		out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr, SkipTrue: uint8(skip)})
	}
	out = append(out, blocks...)
	out = append(out, bpf.RetConstant{Val: uint32(Trap)})
	for _, action := range rets {
		out = append(out, bpf.RetConstant{Val: uint32(action)})
	}
	return out, nil
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
