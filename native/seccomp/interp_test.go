package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// seccompData is the input of a filter run, laid out as struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [maxArgs]uint64
}

// bytes encodes d as the kernel does on a little-endian machine.
func (d seccompData) bytes() []byte {
	buf := make([]byte, seccompDataSize)
	binary.LittleEndian.PutUint32(buf[offsetNr:], d.nr)
	binary.LittleEndian.PutUint32(buf[offsetArch:], d.arch)
	binary.LittleEndian.PutUint64(buf[8:], d.ip)
	for i, arg := range d.args {
		binary.LittleEndian.PutUint64(buf[offsetArgs+argSize*i:], arg)
	}
	return buf
}

// run executes prog on d the way the kernel's classic BPF interpreter does, for the
// opcodes the generator emits, and returns the action and how many instructions ran.
func run(prog []bpf.RawInstruction, d seccompData) (Action, int, error) {
	data := d.bytes()
	var acc uint32
	steps := 0
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		steps++
		switch ins.Op {
		case opLoadAbsWord:
			if ins.K%wordSize != 0 || ins.K+wordSize > seccompDataSize {
				return 0, steps, fmt.Errorf("pc %d: load at %d", pc, ins.K)
			}
			acc = binary.LittleEndian.Uint32(data[ins.K:])
		case opAndConst:
			acc &= ins.K
		case opJumpEqConst:
			pc += jump(acc == ins.K, ins)
		case opJumpSet:
			pc += jump(acc&ins.K != 0, ins)
		case opJumpGEConst:
			pc += jump(acc >= ins.K, ins)
		case opJumpAlways:
			pc += int(ins.K)
		case opRetConst:
			return Action(ins.K), steps, nil
		default:
			return 0, steps, fmt.Errorf("pc %d: opcode %#x", pc, ins.Op)
		}
	}
	return 0, steps, fmt.Errorf("ran off the end of the program")
}

func jump(cond bool, ins bpf.RawInstruction) int {
	if cond {
		return int(ins.Jt)
	}
	return int(ins.Jf)
}

// expect is the reference meaning of a rule: the action it takes for these arguments.
func expect(rule Rule, args [maxArgs]uint64) Action {
	for _, check := range rule.Checks {
		all := true
		for _, cond := range check.When {
			word := uint32(args[cond.Arg])
			if cond.High {
				word = uint32(args[cond.Arg] >> 32)
			}
			if word&cond.Mask != cond.Value {
				all = false
			}
		}
		if all {
			return check.Action
		}
	}
	return rule.Otherwise
}
