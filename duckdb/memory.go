package duckdb

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kalla-dev/kalla"
)

// sessionMemory is the memory_limit of each session: limit (a size DuckDB
// takes, or a percentage of RAM, which DuckDB refuses, so
// KALLA_MEMORY_LIMIT=75% used to fail every job; empty means DuckDB's own
// default, 80% of RAM) divided among the sessions that run at once.
//
// Each session is a database of its own with its own buffer pool, so the
// limit is divided rather than given whole to each: --memory-limit keeps
// bounding the process, as it did when one database served every job, and
// jobs beyond their share spill to --temp-dir (the 128MB spill test still
// finishes). A lone job on a process configured for N at once gets 1/N; a
// process that runs one job at a time (kallad run, an executor with the
// default --max-tasks 1) is unchanged. The result is "" when DuckDB's
// default applies unchanged.
func sessionMemory(limit string, sessions int) (string, error) {
	limit = strings.TrimSpace(limit)
	sessions = max(sessions, 1)
	if limit == "" && sessions == 1 {
		return "", nil
	}
	pct, isPct := strings.CutSuffix(limit, "%")
	if limit == "" {
		pct, isPct = "80", true
	}
	var bytes int64
	switch {
	case isPct:
		p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || p <= 0 || p > 100 {
			return "", kalla.Invalid("memory-limit", "%q is not a percentage of RAM between 0 and 100%%", limit)
		}
		total, err := totalMemory()
		if err != nil {
			return "", kalla.Invalid("memory-limit", "%q: cannot read the machine's RAM (%v); give a size such as 4GB", limit, err)
		}
		bytes = int64(float64(total) * p / 100)
	case sessions == 1:
		// DuckDB checks the size itself.
		return limit, nil
	default:
		var err error
		if bytes, err = parseSize(limit); err != nil {
			return "", kalla.Invalid("memory-limit", "%q is not a memory size (e.g. 4GB, 512MB, 75%%)", limit)
		}
	}
	return fmt.Sprintf("%dKiB", bytes/int64(sessions)/1024), nil
}

// sizeUnits are the units DuckDB's memory_limit takes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1, "byte": 1, "bytes": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize reads a size such as "4GB", "512 MiB" or "1.5gb".
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	unit, ok := sizeUnits[strings.TrimSpace(s[i:])]
	if err != nil || !ok || n <= 0 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return int64(n * unit), nil
}

// totalMemory is the RAM this process may use: MemTotal of /proc/meminfo,
// or the cgroup's memory.max when a container sets a smaller one.
func totalMemory() (int64, error) {
	total, err := memTotal()
	if err != nil {
		return 0, err
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < total {
			total = n
		}
	}
	return total, nil
}

// memTotal is MemTotal of /proc/meminfo, in bytes.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
