// Package kalladproc builds kallad and runs it as a child process for the
// benchmark commands, which measure it from outside as a user would.
package kalladproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds cmd/kallad into dir. It runs in the current folder, which
// must be inside the Kalla module.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "kallad")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kalla-dev/kalla/cmd/kallad")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kallad (run from the repository, or pass --kallad): %w\n%s", err, out)
	}
	return bin, nil
}

// LogField returns field of the first JSON log line in the file at path
// whose msg is msg, or "".
func LogField(path, msg, field string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			v, _ := line[field].(string)
			return v
		}
	}
	return ""
}

// Tail returns the last n bytes of the file at path, for error messages.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
