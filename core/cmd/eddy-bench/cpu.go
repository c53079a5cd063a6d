package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cpuTicks sums user+system clock ticks of every process by command name,
// from /proc/<pid>/stat.
func cpuTicks() map[string]int64 {
	out := map[string]int64{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[s[open+1:closing]] += utime + stime
	}
	return out
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// cpuSplit describes which processes used the CPU between two samples, in
// cores, busiest first.
func cpuSplit(before, after map[string]int64, d time.Duration) string {
	type use struct {
		name  string
		cores float64
	}
	var uses []use
	total := 0.0
	for name, t := range after {
		c := float64(t-before[name]) / clockTicks / d.Seconds()
		if c >= 0.01 {
			uses = append(uses, use{name, c})
			total += c
		}
	}
	slices.SortFunc(uses, func(a, b use) int {
		switch {
		case a.cores > b.cores:
			return -1
		case a.cores < b.cores:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var b strings.Builder
	for _, u := range uses {
		fmt.Fprintf(&b, "| %s | %.2f |\n", u.name, u.cores)
	}
	fmt.Fprintf(&b, "| all | %.2f |\n", total)
	return b.String()
}
