package seccomp

import "testing"

// Flags glibc's pthread_create passes to clone, and what fork and vfork pass.
const (
	cloneVM            = 0x00000100
	cloneFS            = 0x00000200
	cloneFiles         = 0x00000400
	cloneSighand       = 0x00000800
	cloneVfork         = 0x00004000
	cloneSysvsem       = 0x00040000
	cloneSettls        = 0x00080000
	cloneParentSettid  = 0x00100000
	cloneChildCleartid = 0x00200000
	cloneChildSettid   = 0x01000000
	sigCHLD            = 17
	pthreadFlags       = cloneVM | cloneFS | cloneFiles | cloneSighand | cloneThread |
		cloneSysvsem | cloneSettls | cloneParentSettid | cloneChildCleartid
	forkFlags  = cloneChildSettid | cloneChildCleartid | sigCHLD
	vforkFlags = cloneVM | cloneVfork | sigCHLD
)

const (
	afPacket     = 17
	afNetlink    = 16
	netlinkRoute = 0
	netlinkAudit = 9
	sockDgram    = 2
	sockNonblock = 0x800
	ioctlTIOCSTI = 0x5412 // pushes bytes into a tty's input: never
	ioctlTCSETS  = 0x5402
	prSetDump    = 4
	prSetSeccomp = 22
	prSetNNP     = 38
	sigINT       = 2
	sigKILL      = 9
	userPointer  = 0x7ffd_1234_5678
	highPointer  = 0x7f00_0000_0000
)

type argCase struct {
	name string
	args []uint64
	want Action
}

func checkCases(t *testing.T, opts Options, cases []argCase) {
	t.Helper()
	for _, arch := range Arches {
		prog := build(t, arch, opts)
		for _, c := range cases {
			if got := call(t, prog, c.name, c.args...); got != c.want {
				t.Errorf("%s net=%v %s(%#x): %v, want %v", arch.Name, opts.Network, c.name, c.args, got, c.want)
			}
		}
	}
}

func TestSignalsOnlyToTheOwnProcess(t *testing.T) {
	minus1 := uint64(0xffffffffffffffff)
	for _, opts := range allOptions {
		checkCases(t, opts, []argCase{
			{"kill", []uint64{testPID, sigKILL}, Allow},
			{"kill", []uint64{highGarbag | testPID, sigKILL}, Allow}, // the kernel sees testPID
			{"kill", []uint64{otherPID, sigKILL}, EPERM},
			{"kill", []uint64{0, sigKILL}, EPERM},      // the process group
			{"kill", []uint64{minus1, sigKILL}, EPERM}, // every process
			{"kill", []uint64{testPID + 1, sigKILL}, EPERM},
			{"tgkill", []uint64{testPID, testPID + 3, sigINT}, Allow},
			{"tgkill", []uint64{otherPID, otherPID, sigINT}, EPERM},
			{"rt_sigqueueinfo", []uint64{testPID, sigINT, 0}, Allow},
			{"rt_sigqueueinfo", []uint64{otherPID, sigINT, 0}, EPERM},
			{"rt_tgsigqueueinfo", []uint64{testPID, testPID, sigINT, 0}, Allow},
			{"rt_tgsigqueueinfo", []uint64{otherPID, otherPID, sigINT, 0}, EPERM},
			{"tkill", []uint64{testPID, sigINT}, EPERM},
			{"rt_sigaction", []uint64{sigSYS, userPointer, 0, 8}, EPERM},
			{"rt_sigaction", []uint64{highGarbag | sigSYS, userPointer, 0, 8}, EPERM},
			{"rt_sigaction", []uint64{sigSYS, highPointer, 0, 8}, EPERM}, // low word 0, not NULL
			{"rt_sigaction", []uint64{sigSYS, 0, userPointer, 8}, Allow}, // a query
			{"rt_sigaction", []uint64{highGarbag | sigSYS, 0, userPointer, 8}, Allow},
			{"rt_sigaction", []uint64{sigINT, userPointer, 0, 8}, Allow},
		})
	}
}

func TestCloneOnlyMakesThreads(t *testing.T) {
	for _, opts := range allOptions {
		checkCases(t, opts, []argCase{
			{"clone", []uint64{pthreadFlags}, Allow},
			{"clone", []uint64{highGarbag | pthreadFlags}, Allow}, // cut to 32 bits by the kernel
			{"clone", []uint64{forkFlags}, EPERM},
			{"clone", []uint64{vforkFlags}, EPERM},
			{"clone", []uint64{pthreadFlags | cloneNewUser}, EPERM},
			{"clone", []uint64{pthreadFlags | cloneNewNS}, EPERM},
			{"clone", []uint64{pthreadFlags | cloneNewPID}, EPERM},
			{"clone", []uint64{pthreadFlags | cloneNewNet}, EPERM},
			{"clone", []uint64{cloneNewUser}, EPERM},
			{"clone3", []uint64{0, 88}, ENOSYS},
		})
	}
}

func TestSocketFamilies(t *testing.T) {
	off, on := allOptions[0], allOptions[1]
	// Either way: queries and I/O on sockets already held, AF_UNIX stream pairs (asyncio's
	// self-pipe); never bind, listen, accept, datagram pairs or pairs of another family.
	for _, opts := range allOptions {
		checkCases(t, opts, []argCase{
			{"sendto", []uint64{3, 0, 16}, Allow},
			{"recvfrom", []uint64{3, 0, 16}, Allow},
			{"recvmsg", []uint64{3, 0, 0}, Allow},
			{"getsockopt", []uint64{3, 1, 4}, Allow},
			{"getsockname", []uint64{2, 0, 0}, Allow},
			{"socketpair", []uint64{afUnix, sockStream, 0, 0}, Allow},
			{"socketpair", []uint64{afUnix, sockStream | sockNonblock, 0, 0}, Allow},
			{"socketpair", []uint64{afUnix, sockDgram, 0, 0}, EPERM},
			{"socketpair", []uint64{afInet, sockStream, 0, 0}, EPERM},
			{"bind", []uint64{3, 0, 16}, EPERM},
			{"listen", []uint64{3, 1}, EPERM},
			{"accept4", []uint64{3, 0, 0, 0}, EPERM},
		})
	}
	checkCases(t, off, []argCase{
		{"socket", []uint64{afInet, sockStream, 0}, EPERM},
		{"socket", []uint64{afInet6, sockStream, 0}, EPERM},
		{"socket", []uint64{afUnix, sockStream, 0}, EPERM},
		{"socket", []uint64{afNetlink, 3, netlinkRoute}, EPERM},
		{"connect", []uint64{3, 0, 16}, EPERM},
	})
	checkCases(t, on, []argCase{
		{"socket", []uint64{afInet, sockStream, 0}, Allow},
		{"socket", []uint64{afInet6, sockStream, 0}, Allow},
		{"socket", []uint64{highGarbag | afInet, sockStream, 0}, Allow},
		{"socket", []uint64{afUnix, sockStream, 0}, EPERM},
		{"socket", []uint64{highGarbag | afUnix, sockStream, 0}, EPERM},
		{"socket", []uint64{afPacket, 3, 0}, EPERM},
		// Netlink dumps would list the host's interfaces, addresses, routes and neighbours;
		// glibc's getaddrinfo does without it (AI_ADDRCONFIG then assumes both families).
		{"socket", []uint64{afNetlink, 3, netlinkRoute}, EPERM},
		{"socket", []uint64{afNetlink, sockDgram | sockNonblock, netlinkRoute}, EPERM},
		{"socket", []uint64{afNetlink, 3, netlinkAudit}, EPERM},
		{"connect", []uint64{3, 0, 16}, Allow},
	})
}

func TestIoctlAndPrctlLists(t *testing.T) {
	for _, opts := range allOptions {
		checkCases(t, opts, []argCase{
			{"ioctl", []uint64{1, ioctlTCGETS}, Allow},
			{"ioctl", []uint64{1, ioctlTIOCGWINSZ}, Allow},
			{"ioctl", []uint64{1, ioctlTIOCGPGRP}, Allow},
			{"ioctl", []uint64{1, ioctlFIONREAD}, Allow},
			{"ioctl", []uint64{1, ioctlFIONBIO}, Allow},
			{"ioctl", []uint64{1, ioctlFIOCLEX}, Allow},
			{"ioctl", []uint64{1, ioctlFIONCLEX}, Allow},
			{"ioctl", []uint64{1, highGarbag | ioctlFIONBIO}, Allow},
			{"ioctl", []uint64{1, ioctlTIOCSTI}, EPERM},
			{"ioctl", []uint64{1, ioctlTCSETS}, EPERM},
			{"ioctl", []uint64{1, highGarbag | ioctlTIOCSTI}, EPERM},
			{"prctl", []uint64{prSetName, 0}, Allow},
			{"prctl", []uint64{prGetName, 0}, Allow},
			{"prctl", []uint64{prSetVMA, 0}, Allow},
			{"prctl", []uint64{prGetDumpable}, Allow},
			{"prctl", []uint64{prSetPdeathsig, 0}, EPERM},
			{"prctl", []uint64{prSetPdeathsig, sigKILL}, EPERM},
			{"prctl", []uint64{prCapbsetRead, 0}, Allow},
			{"prctl", []uint64{prSetDump, 1}, EPERM},
			{"prctl", []uint64{prSetSeccomp, 2}, EPERM},
			{"prctl", []uint64{prSetNNP, 0}, EPERM},
		})
	}
}
