/*
Copyright 2026 The jobstate Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// proc is a process whose resident memory the soak follows.
type proc struct {
	name string
	pid  int
	// checked: its growth is a check (the manager and kube-apiserver).
	checked bool
}

// memory follows the RSS of the manager, kube-apiserver, etcd and the
// soak itself. The baseline is read once, after the warm-up (see
// warmup), when caches and connections are warm: kube-apiserver's watch
// cache takes a few minutes of this load to fill.
type memory struct {
	procs []proc
	// base, last and peak are in KiB, per proc; -1 when unreadable.
	base, last, peak []int64
	based            bool
	samples          int
}

// newMemory finds the processes: the manager by the pid it was started
// with; kube-apiserver among the processes by the port of env.Config.Host
// in its --secure-port (other engineers' control planes listen on other
// ports); etcd by the --etcd-servers URL that kube-apiserver was given.
func newMemory(env *testenv.Env, mgr *manager) (*memory, error) {
	host, err := url.Parse(env.Config.Host)
	if err != nil {
		return nil, err
	}
	cmdlines, err := processes()
	if err != nil {
		return nil, err
	}
	apiserver, args := findProcess(cmdlines, "kube-apiserver", "--secure-port="+host.Port())
	if apiserver == 0 {
		return nil, fmt.Errorf("no kube-apiserver process with --secure-port=%s", host.Port())
	}
	etcd, _ := findProcess(cmdlines, "etcd", "--listen-client-urls="+flagValue(args, "--etcd-servers"))
	if etcd == 0 {
		return nil, fmt.Errorf("no etcd process serving %s", flagValue(args, "--etcd-servers"))
	}
	m := &memory{procs: []proc{
		{"manager", mgr.pid(), true}, {"kube-apiserver", apiserver, true},
		{"etcd", etcd, false}, {"soak", os.Getpid(), false},
	}}
	n := len(m.procs)
	m.base, m.last, m.peak = make([]int64, n), make([]int64, n), make([]int64, n)
	return m, nil
}

// describe names the processes and their pids.
func (m *memory) describe() string {
	var parts []string
	for _, p := range m.procs {
		parts = append(parts, fmt.Sprintf("%s pid %d", p.name, p.pid))
	}
	return strings.Join(parts, ", ")
}

// sample reads every process's RSS and renders it for the progress line.
func (m *memory) sample() string {
	var parts []string
	for i, p := range m.procs {
		kib, err := rssKiB(p.pid)
		if err != nil {
			kib = -1
		}
		m.last[i], m.peak[i] = kib, max(m.peak[i], kib)
		parts = append(parts, fmt.Sprintf("%s=%s", p.name, fmtKiB(kib)))
	}
	m.samples++
	return strings.Join(parts, " ")
}

// baseline reads every process's RSS as the base of the growth checks.
func (m *memory) baseline() {
	for i, p := range m.procs {
		kib, err := rssKiB(p.pid)
		if err != nil {
			kib = -1
		}
		m.base[i], m.peak[i] = kib, max(m.peak[i], kib)
	}
	m.based = true
}

// growth is the last sample over the baseline for process i.
func (m *memory) growth(i int) float64 {
	if !m.based || m.base[i] <= 0 || m.last[i] <= 0 {
		return 0
	}
	return float64(m.last[i]) / float64(m.base[i])
}

// checks: the RSS of the manager and kube-apiserver did not grow by more
// than maxGrowth from the baseline to the last sample. Without a baseline
// and a later sample there is no growth to measure, and the check says so.
func (m *memory) checks(maxGrowth float64) []check {
	var checks []check
	for i, p := range m.procs {
		if !p.checked {
			continue
		}
		c := check{name: fmt.Sprintf("%s RSS growth, end / baseline after warm-up (≤ %.2f)", p.name, maxGrowth), ratio: m.growth(i), maxRatio: maxGrowth}
		if !m.based || m.samples == 0 {
			c.name += ": no baseline and later sample, not measured"
			c.maxRatio = 0
		}
		if m.last[i] < 0 {
			c.name += ": process gone"
		}
		checks = append(checks, c)
	}
	return checks
}

// rssKiB reads VmRSS from /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// processes returns the argument vectors of the processes this user can
// see, by pid.
func processes() (map[int][]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	cmdlines := map[int][]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // exited meanwhile, or a kernel thread
		}
		cmdlines[pid] = strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
	}
	return cmdlines, nil
}

// findProcess returns the pid and arguments of the process whose
// executable is named binary and which has the argument arg.
func findProcess(cmdlines map[int][]string, binary, arg string) (int, []string) {
	for pid, args := range cmdlines {
		if filepath.Base(args[0]) != binary {
			continue
		}
		for _, a := range args[1:] {
			if a == arg {
				return pid, args
			}
		}
	}
	return 0, nil
}

// flagValue is the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// fmtKiB renders KiB as MiB.
func fmtKiB(kib int64) string {
	if kib < 0 {
		return "gone"
	}
	return fmt.Sprintf("%.0fMiB", float64(kib)/1024)
}
