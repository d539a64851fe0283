package seccomp

// Counts says how the rules answer one arch's system calls.
type Counts struct {
	Allow       int // allowed whatever the arguments
	EPERM       int // refused with EPERM whatever the arguments
	ENOSYS      int // refused with ENOSYS
	ArgFiltered int // decided by their arguments
	Skipped     int // named by the policy but absent on this arch
	Trapped     int // the arch's other system calls: the default action
}

// Count tallies rules against arch.
func Count(arch Arch, rules []Rule) Counts {
	var c Counts
	named := 0
	for _, rule := range rules {
		if _, ok := arch.Syscalls[rule.Name]; !ok {
			c.Skipped++
			continue
		}
		named++
		switch {
		case len(rule.Checks) > 0:
			c.ArgFiltered++
		case rule.Otherwise == Allow:
			c.Allow++
		case rule.Otherwise == EPERM:
			c.EPERM++
		case rule.Otherwise == ENOSYS:
			c.ENOSYS++
		}
	}
	c.Trapped = len(arch.Syscalls) - named
	return c
}
