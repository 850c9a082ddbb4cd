package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports (the kernel exports it fixed, independent of CONFIG_HZ).
const clockTicks = 100

// procSample is the server's memory and CPU at one moment, summed over the process and its descendants
// (ejabberd's Erlang VM has helpers; a wrapper pid such as a shell counts its children).
type procSample struct {
	At    time.Time
	RSSKB uint64  // VmRSS, KiB
	CPU   float64 // utime+stime, seconds
	Procs int
}

// serverProc names the process being measured; pid 0 means unknown (figures are reported as absent).
type serverProc struct {
	pid int
}

// findServer resolves -server-pid or -server-proc-name. A name matches the process name (comm) exactly
// or, failing that, a substring of the command line; more than one match is an error so that a benchmark
// never measures the wrong process (several Erlang VMs often run on one machine).
func findServer(pid int, name string) (serverProc, error) {
	if pid > 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			return serverProc{}, fmt.Errorf("server pid %d: %w", pid, err)
		}
		return serverProc{pid: pid}, nil
	}
	if name == "" {
		return serverProc{}, nil
	}
	// This process and its ancestors (the shell that started it) may well mention the name on their
	// command lines; they are never the server.
	skip := map[int]bool{}
	for p := os.Getpid(); p > 1 && !skip[p]; p = parentOf(p) {
		skip[p] = true
	}
	var byComm, byCmd []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || skip[p] {
			continue
		}
		comm, _ := os.ReadFile(d + "/comm")
		if strings.TrimSpace(string(comm)) == name {
			byComm = append(byComm, p)
			continue
		}
		cmd, _ := os.ReadFile(d + "/cmdline")
		if bytes.Contains(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}), []byte(name)) {
			byCmd = append(byCmd, p)
		}
	}
	found := byComm
	if len(found) == 0 {
		found = byCmd
	}
	switch len(found) {
	case 0:
		return serverProc{}, fmt.Errorf("no process matches -server-proc-name %q", name)
	case 1:
		return serverProc{pid: found[0]}, nil
	default:
		return serverProc{}, fmt.Errorf("-server-proc-name %q matches %d processes %v: use -server-pid", name, len(found), found)
	}
}

// parentOf returns the parent pid of pid, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := statFields(b)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// sample reads VmRSS and CPU time for the process tree rooted at p.pid.
func (p serverProc) sample() (procSample, error) {
	s := procSample{At: time.Now()}
	if p.pid == 0 {
		return s, errors.New("no server process")
	}
	for _, pid := range descendants(p.pid) {
		rss, cpu, err := readProc(pid)
		if err != nil {
			if pid == p.pid {
				return s, err
			}
			continue // a helper that exited meanwhile
		}
		s.RSSKB += rss
		s.CPU += cpu
		s.Procs++
	}
	return s, nil
}

// descendants returns root and every process below it, from /proc/<pid>/task/*/children when the kernel
// has it, else from the parent field of every /proc/<pid>/stat.
func descendants(root int) []int {
	out := []int{root}
	parents := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 4 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		ppid, _ := strconv.Atoi(f[1])
		parents[ppid] = append(parents[ppid], pid)
	}
	for i := 0; i < len(out); i++ {
		out = append(out, parents[out[i]]...)
	}
	return out
}

// statFields splits /proc/<pid>/stat after the command name (which may hold spaces and parentheses):
// the first field returned is the state (field 3 in proc(5)).
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func readProc(pid int) (rssKB uint64, cpu float64, err error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := statFields(st)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("proc: short stat for %d", pid)
	}
	// utime and stime are fields 14 and 15 in proc(5); f[0] is field 3.
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	cpu = float64(ut+stime) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			break
		}
	}
	return rssKB, cpu, nil
}

// selfCPU returns this process's user+system CPU seconds (getrusage), to show how much of the shared
// cores the load generator itself took.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// selfRSSKB is this process's VmRSS in KiB.
func selfRSSKB() uint64 {
	rss, _, _ := readProc(os.Getpid())
	return rss
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, err
		}
	}
	return lim.Cur, nil
}
