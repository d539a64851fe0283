// Command tables prints, per arch and network setting, how the seccomp policy answers the
// arch's system calls and how long the filter is (for native/README.md):
//
//	go run ./cmd/tables
package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"fngw/native/seccomp"
)

// examplePID stands for the locked process's pid; it changes no count.
const examplePID = 1000

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tables:", err)
		os.Exit(1)
	}
}

func run() error {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "arch\tnetwork\tsyscalls\tALLOW\tEPERM\tENOSYS\targ-filtered\ttrapped\tskipped\tinstructions\t")
	for _, arch := range seccomp.Arches {
		for _, network := range []bool{false, true} {
			opts := seccomp.Options{Network: network, PID: examplePID}
			prog, err := seccomp.BuildPolicy(arch, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", arch.Name, err)
			}
			c := seccomp.Count(arch, seccomp.Policy(opts))
			fmt.Fprintf(w, "%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", arch.Name, network,
				len(arch.Syscalls), c.Allow, c.EPERM, c.ENOSYS, c.ArgFiltered, c.Trapped, c.Skipped,
				len(prog.Instructions))
		}
	}
	return w.Flush()
}
