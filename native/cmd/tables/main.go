// Command tables prints, per arch and network setting, how the seccomp policy answers the
// arch's system calls and how long the filter is (for native/README.md):
//
//	go run ./cmd/tables
//
// With -refusals it writes instead what the gateway needs to answer the calls the filter hands
// to its listener (build/refusals.json, written by scripts/build-native.sh): per audit arch, each
// system call's name and whether a refusal is answered EPERM or kills the process.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"fngw/native/seccomp"
)

// examplePID stands for the locked process's pid; it changes no count.
const examplePID = 1000

func main() {
	refusals := flag.Bool("refusals", false, "print the refusals table (JSON) instead")
	flag.Parse()
	run := printTables
	if *refusals {
		run = printRefusals
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tables:", err)
		os.Exit(1)
	}
}

func printTables() error {
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

// Refusal is how the gateway answers a refused call: "eperm" when the policy refuses it with
// EPERM (under some arguments, with or without network), else "kill".
type Refusal struct {
	Name   string `json:"name"`
	Answer string `json:"answer"`
}

func printRefusals() error {
	out := map[string]map[string]Refusal{}
	for _, arch := range seccomp.Arches {
		eperm := map[string]bool{}
		for _, network := range []bool{false, true} {
			for _, rule := range seccomp.Policy(seccomp.Options{Network: network, PID: examplePID}) {
				refused := rule.Otherwise == seccomp.EPERM
				for _, check := range rule.Checks {
					refused = refused || check.Action == seccomp.EPERM
				}
				eperm[rule.Name] = eperm[rule.Name] || refused
			}
		}
		calls := map[string]Refusal{}
		for name, nr := range arch.Syscalls {
			answer := "kill"
			if eperm[name] {
				answer = "eperm"
			}
			calls[strconv.Itoa(int(nr))] = Refusal{Name: name, Answer: answer}
		}
		out[strconv.FormatUint(uint64(arch.AuditArch), 10)] = calls
	}
	encoder := json.NewEncoder(os.Stdout)
	return encoder.Encode(out)
}
