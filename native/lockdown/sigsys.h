// The SIGSYS reporter: async-signal-safe C, installed right before the seccomp filter.
#ifndef LOCKDOWN_SIGSYS_H
#define LOCKDOWN_SIGSYS_H

// SYSCALL_NAME_SLOTS is the size of the name table (seccomp.MaxSyscall).
#define SYSCALL_NAME_SLOTS 1024

// lockdown_set_syscall_name names system call nr in the reporter's table (name must live
// forever). Returns 0, or -1 when nr is out of range.
int lockdown_set_syscall_name(int nr, const char *name);

// lockdown_install_sigsys installs the SIGSYS handler. It writes
// {"kind":"forbidden","syscall":<nr>,"name":"<name>"} to report_fd (if >= 0) when the filter
// traps a call, then makes system call die_nr, which the filter traps too: with SIGSYS
// blocked inside its handler the kernel resets it to SIG_DFL and the process dies by SIGSYS.
// Returns 0, or an errno.
int lockdown_install_sigsys(int report_fd, long die_nr);

#endif
