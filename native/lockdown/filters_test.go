package lockdown

import (
	"fmt"
	"testing"

	"fngw/native/seccomp"
)

// The filters written by cmd/genfilters are the policy's, for any pid: a change to the policy
// without `go generate ./...` fails here.
func TestGeneratedFiltersAreThePolicys(t *testing.T) {
	arch, err := seccomp.Native()
	if err != nil {
		t.Fatal(err)
	}
	for i, notify := range []bool{false, true} {
		for j, network := range []bool{false, true} {
			for _, pid := range []uint32{1, 4242, 0x7fffffff} {
				t.Run(fmt.Sprintf("listener=%v network=%v pid=%d", notify, network, pid), func(t *testing.T) {
					want, err := seccomp.BuildPolicy(arch, seccomp.Options{Network: network, Notify: notify, PID: pid})
					if err != nil {
						t.Fatal(err)
					}
					got := generated[i][j].filter(pid)
					if len(got) != len(want.Instructions) {
						t.Fatalf("%d instructions, the policy has %d: run go generate ./... in native/", len(got), len(want.Instructions))
					}
					for k, ins := range want.Instructions {
						if g := got[k]; g.Code != ins.Op || g.Jt != ins.Jt || g.Jf != ins.Jf || g.K != ins.K {
							t.Fatalf("instruction %d is %+v, the policy's %+v: run go generate ./... in native/", k, g, ins)
						}
					}
				})
			}
		}
	}
}
