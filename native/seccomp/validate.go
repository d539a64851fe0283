package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Classic BPF opcodes the generator emits (include/uapi/linux/filter.h, bpf_common.h);
// a subset of what the kernel's seccomp checker accepts.
const (
	opLoadAbsWord = 0x20 // BPF_LD | BPF_W | BPF_ABS
	opAndConst    = 0x54 // BPF_ALU | BPF_AND | BPF_K
	opJumpEqConst = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opJumpSet     = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	opJumpGEConst = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	opJumpAlways  = 0x05 // BPF_JMP | BPF_JA
	opRetConst    = 0x06 // BPF_RET | BPF_K
)

const (
	wordSize        = 4
	seccompDataSize = 64   // sizeof(struct seccomp_data)
	maxJump         = 255  // a conditional jump's offsets are one byte
	maxInstructions = 4096 // BPF_MAXINSNS
	minInstructions = 1
)

// Validate checks a program the way the kernel would before accepting it, and more
// strictly: only the generator's opcodes, aligned loads inside seccomp_data, every jump
// landing inside the program, and a ret as the last instruction.
func Validate(prog []bpf.RawInstruction) error {
	if len(prog) < minInstructions || len(prog) > maxInstructions {
		return fmt.Errorf("program of %d instructions (1..%d allowed)", len(prog), maxInstructions)
	}
	for pc, ins := range prog {
		switch ins.Op {
		case opLoadAbsWord:
			if ins.K%wordSize != 0 || ins.K+wordSize > seccompDataSize {
				return fmt.Errorf("pc %d: load at offset %d is outside seccomp_data", pc, ins.K)
			}
		case opAndConst, opRetConst:
		case opJumpAlways:
			if target := pc + 1 + int(ins.K); ins.K >= maxInstructions || target >= len(prog) {
				return fmt.Errorf("pc %d: ja to %d is past the end (%d)", pc, target, len(prog))
			}
		case opJumpEqConst, opJumpSet, opJumpGEConst:
			for _, skip := range []uint8{ins.Jt, ins.Jf} {
				if target := pc + 1 + int(skip); target >= len(prog) {
					return fmt.Errorf("pc %d: jump to %d is past the end (%d)", pc, target, len(prog))
				}
			}
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, ins.Op)
		}
	}
	if last := prog[len(prog)-1]; last.Op != opRetConst {
		return fmt.Errorf("the last instruction is not a ret (opcode %#x)", last.Op)
	}
	return nil
}
