package duckdb

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kalla-dev/kalla"
)

// memoryLimit turns a percentage of RAM ("75%") into bytes, which DuckDB's
// memory_limit needs (it refuses "75%", so KALLA_MEMORY_LIMIT=75% failed
// every job); other sizes are DuckDB's to check.
func memoryLimit(limit string) (string, error) {
	pct, ok := strings.CutSuffix(strings.TrimSpace(limit), "%")
	if !ok {
		return limit, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
	if err != nil || p <= 0 || p > 100 {
		return "", kalla.Invalid("memory-limit", "%q is not a percentage of RAM between 0 and 100%%", limit)
	}
	total, err := totalMemory()
	if err != nil {
		return "", kalla.Invalid("memory-limit", "%q: cannot read the machine's RAM (%v); give a size such as 4GB", limit, err)
	}
	return fmt.Sprintf("%dKiB", int64(float64(total)*p/100)/1024), nil
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
