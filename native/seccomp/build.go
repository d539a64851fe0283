package seccomp

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// Offsets in struct seccomp_data (include/uapi/linux/seccomp.h): int nr; __u32 arch;
// __u64 instruction_pointer; __u64 args[6]. Both supported arches are little-endian, so the
// low word of args[i] is at offsetArgs + argSize*i and its high word 4 bytes later.
const (
	offsetNr   = 0
	offsetArch = 4
	offsetArgs = 16
	argSize    = 8
	highWord   = 4
	maxArgs    = 6
)

// leafRules is the most rules a leaf of the search tree tests one after another.
const leafRules = 8

// Program is a filter assembled for one arch.
type Program struct {
	Arch         Arch
	Instructions []bpf.RawInstruction
	// Skipped lists the policy's names this arch has no system call for (aarch64 has no
	// fork, open or stat, for example): they need no rule there.
	Skipped []string
}

// BuildPolicy assembles the filter of Policy(opts) for arch; with opts.Notify, every EPERM and
// the default TRAP become Notify.
func BuildPolicy(arch Arch, opts Options) (Program, error) {
	rules := Policy(opts)
	if !opts.Notify {
		return Build(arch, rules)
	}
	notify := func(a Action) Action {
		if a == EPERM {
			return Notify
		}
		return a
	}
	for i := range rules {
		rules[i].Otherwise = notify(rules[i].Otherwise)
		checks := make([]Check, len(rules[i].Checks))
		for j, check := range rules[i].Checks {
			checks[j] = Check{When: check.When, Action: notify(check.Action)}
		}
		rules[i].Checks = checks
	}
	return assemble(arch, rules, Notify)
}

// numbered is a rule with the arch's number for its system call.
type numbered struct {
	nr   uint32
	rule *Rule
}

// Build assembles a filter for arch from rules:
//
//	ld [arch]; jeq #AUDIT_ARCH, 1, 0; ret KILL_PROCESS       a foreign arch dies first
//	ld [nr];   jset #FOREIGN_ABI_BIT, 0, 1; ret KILL_PROCESS  x32 numbers on x86_64
//	per Frequent rule, in policy order:                      the hot path
//	    jeq #nr, 0, 1; ret ACTION                            or jeq #nr, 0, len; block
//	a binary search on nr over the other rules:
//	    jge #mid, 0, 1; ja right; <left half>; <right half>
//	    leaves: up to leafRules rules, then ret TRAP          anything not named
//
// An argument block ends every path with a ret, so when its jeq skips it the accumulator
// still holds nr for the next rule; conditional jumps stay within a block or a leaf (at
// most 255 ahead, checked), and only ja (32-bit offset) crosses half of the tree. The search
// keeps the kernel's work small: at load time it runs the filter once per syscall number
// to find the always-allowed ones, and a linear chain of ~300 rules made that ~0.35 ms.
func Build(arch Arch, rules []Rule) (Program, error) {
	return assemble(arch, rules, Trap)
}

// assemble builds rules with the calls no rule names answered by unnamed.
func assemble(arch Arch, rules []Rule, unnamed Action) (Program, error) {
	e := emitter{prog: make([]bpf.Instruction, 0, 2*len(rules)), unnamed: unnamed}
	e.emit(bpf.LoadAbsolute{Off: offsetArch, Size: wordSize})
	e.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch.AuditArch, SkipTrue: 1})
	e.emit(bpf.RetConstant{Val: uint32(KillProcess)})
	e.emit(bpf.LoadAbsolute{Off: offsetNr, Size: wordSize})
	if arch.ForeignABIBit != 0 {
		e.emit(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: arch.ForeignABIBit, SkipFalse: 1})
		e.emit(bpf.RetConstant{Val: uint32(KillProcess)})
	}
	seen := make(map[string]bool, len(rules))
	others := make([]numbered, 0, len(rules))
	var skipped []string
	for i := range rules {
		rule := &rules[i]
		if seen[rule.Name] {
			return Program{}, fmt.Errorf("%s: named twice in the policy", rule.Name)
		}
		seen[rule.Name] = true
		nr, ok := arch.Syscalls[rule.Name]
		switch {
		case !ok && !knownAnywhere(rule.Name):
			return Program{}, fmt.Errorf("%s: no such system call on any arch", rule.Name)
		case !ok:
			skipped = append(skipped, rule.Name)
		case rule.Frequent:
			if err := e.rule(nr, rule); err != nil {
				return Program{}, err
			}
		default:
			others = append(others, numbered{nr: nr, rule: rule})
		}
	}
	slices.SortFunc(others, func(a, b numbered) int { return cmp.Compare(a.nr, b.nr) })
	if err := e.tree(others); err != nil {
		return Program{}, err
	}

	raw, err := bpf.Assemble(e.prog)
	if err != nil {
		return Program{}, fmt.Errorf("assemble: %w", err)
	}
	if err := Validate(raw); err != nil {
		return Program{}, err
	}
	return Program{Arch: arch, Instructions: raw, Skipped: skipped}, nil
}

// emitter appends instructions to one program; forward jumps are emitted with a zero
// offset and patched once their target is emitted.
type emitter struct {
	prog []bpf.Instruction
	// unnamed answers the calls no rule names.
	unnamed Action
}

// emit appends ins and returns its index.
func (e *emitter) emit(ins bpf.Instruction) int {
	e.prog = append(e.prog, ins)
	return len(e.prog) - 1
}

// here is the index of the next instruction.
func (e *emitter) here() int { return len(e.prog) }

// patch points the true (onTrue) or false branch of the conditional jump at pc to target.
func (e *emitter) patch(pc, target int, onTrue bool) error {
	jump := e.prog[pc].(bpf.JumpIf)
	skip := target - pc - 1
	if skip < 0 || skip > maxJump {
		return fmt.Errorf("jump at %d to %d is beyond a jump (%d)", pc, target, maxJump)
	}
	if onTrue {
		jump.SkipTrue = uint8(skip)
	} else {
		jump.SkipFalse = uint8(skip)
	}
	e.prog[pc] = jump
	return nil
}

// rule is "jeq #nr, 0, <past the block>" and a block that runs the checks in order and
// returns Otherwise when none matched.
func (e *emitter) rule(nr uint32, rule *Rule) error {
	head := e.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr})
	for _, check := range rule.Checks {
		if err := e.check(check); err != nil {
			return fmt.Errorf("%s: %w", rule.Name, err)
		}
	}
	e.emit(bpf.RetConstant{Val: uint32(rule.Otherwise)})
	if err := e.patch(head, e.here(), false); err != nil {
		return fmt.Errorf("%s: argument block: %w", rule.Name, err)
	}
	return nil
}

// check tests each condition in turn (ld the word; and mask; jeq value) and returns the
// check's action when all hold; a failing condition jumps past that ret, to the next check.
func (e *emitter) check(check Check) error {
	if len(check.When) == 0 {
		return fmt.Errorf("a check without conditions")
	}
	misses := make([]int, 0, len(check.When))
	for _, cond := range check.When {
		if cond.Arg < 0 || cond.Arg >= maxArgs {
			return fmt.Errorf("argument %d out of range", cond.Arg)
		}
		if cond.Mask == 0 || cond.Value&^cond.Mask != 0 {
			return fmt.Errorf("condition %+v can never or always hold", cond)
		}
		off := uint32(offsetArgs + argSize*cond.Arg)
		if cond.High {
			off += highWord
		}
		e.emit(bpf.LoadAbsolute{Off: off, Size: wordSize})
		if cond.Mask != lowWord {
			e.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: cond.Mask})
		}
		misses = append(misses, e.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: cond.Value}))
	}
	e.emit(bpf.RetConstant{Val: uint32(check.Action)})
	for _, pc := range misses {
		if err := e.patch(pc, e.here(), false); err != nil {
			return err
		}
	}
	return nil
}

// tree decides rules (sorted by number) with a binary search; every path ends in a ret,
// the unnamed action (TRAP, or Notify) when no rule has the number.
func (e *emitter) tree(rules []numbered) error {
	if len(rules) <= leafRules {
		return e.leaf(rules)
	}
	mid := len(rules) / 2
	// nr >= the first number of the right half: take the ja over the left half.
	e.emit(bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: rules[mid].nr, SkipFalse: 1})
	over := e.emit(bpf.Jump{})
	if err := e.tree(rules[:mid]); err != nil {
		return err
	}
	e.prog[over] = bpf.Jump{Skip: uint32(e.here() - over - 1)}
	return e.tree(rules[mid:])
}

// leaf tests a few rules one after another: a rule without argument checks is one
// "jeq #nr, <ret of its action>, 0" to a ret shared within the leaf; argument blocks
// follow; then ret TRAP for a number no rule has, and the shared rets.
func (e *emitter) leaf(rules []numbered) error {
	type plainRule struct {
		pc     int
		action Action
	}
	plain := make([]plainRule, 0, len(rules))
	for _, r := range rules {
		if len(r.rule.Checks) == 0 {
			pc := e.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr})
			plain = append(plain, plainRule{pc: pc, action: r.rule.Otherwise})
		}
	}
	for _, r := range rules {
		if len(r.rule.Checks) > 0 {
			if err := e.rule(r.nr, r.rule); err != nil {
				return err
			}
		}
	}
	e.emit(bpf.RetConstant{Val: uint32(e.unnamed)})
	rets := map[Action]int{}
	for _, p := range plain {
		if _, ok := rets[p.action]; !ok {
			rets[p.action] = e.emit(bpf.RetConstant{Val: uint32(p.action)})
		}
		if err := e.patch(p.pc, rets[p.action], true); err != nil {
			return err
		}
	}
	return nil
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
