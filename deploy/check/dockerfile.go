package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// checkDockerfile parses a Dockerfile with BuildKit's own parser (the one
// `docker build` runs), failing on syntax errors, unknown instructions and
// the warnings of its linter, then checks what the build needs from its
// context: COPY sources exist, COPY --from names an earlier stage, and a
// golang builder image is at least the Go version go.mod asks for (the
// golang images set GOTOOLCHAIN=local, so an older one cannot build).
func checkDockerfile(dockerfile, contextDir string) error {
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		return fmt.Errorf("dockerfile: %w", err)
	}
	res, err := parser.Parse(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("dockerfile %s: %w", dockerfile, err)
	}
	var errs []error
	for _, w := range res.Warnings {
		errs = append(errs, fmt.Errorf("dockerfile %s: %s", dockerfile, w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		errs = append(errs, fmt.Errorf("dockerfile %s:%d: %s: %s", dockerfile, line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("dockerfile %s: %w", dockerfile, err))...)
	}
	goVersion, err := goDirective(filepath.Join(contextDir, "go.mod"))
	if err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, st := range stages {
		where := fmt.Sprintf("dockerfile %s: stage %d (%s)", dockerfile, i, st.BaseName)
		if err := checkGoImage(st.BaseName, goVersion); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		for _, cmd := range st.Commands {
			cp, ok := cmd.(*instructions.CopyCommand)
			if !ok {
				continue
			}
			if cp.From != "" {
				if !seen[strings.ToLower(cp.From)] {
					errs = append(errs, fmt.Errorf("%s: COPY --from=%s names no earlier stage", where, cp.From))
				}
				continue
			}
			for _, src := range cp.SourcePaths {
				if m, _ := filepath.Glob(filepath.Join(contextDir, src)); len(m) == 0 {
					errs = append(errs, fmt.Errorf("%s: COPY source %s is not in the build context %s", where, src, contextDir))
				}
			}
		}
		seen[strings.ToLower(st.Name)] = true
		seen[strconv.Itoa(i)] = true
	}
	return errors.Join(errs...)
}

// checkGoImage fails when image is golang:X.Y... and X.Y is older than the
// go.mod version want (X.Y or X.Y.Z).
func checkGoImage(image, want string) error {
	tag, ok := strings.CutPrefix(image, "golang:")
	if !ok || want == "" {
		return nil
	}
	have := strings.SplitN(tag, "-", 2)[0]
	if compareVersions(have, want) < 0 {
		return fmt.Errorf("golang image %s is older than go.mod's go %s", tag, want)
	}
	return nil
}

// compareVersions compares dotted versions on the fields both have, so
// that the tag 1.26 (the newest 1.26.x) satisfies go 1.26.8.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x - y
		}
	}
	return 0
}

// goDirective returns the version of a go.mod's go line; no go.mod is no
// version.
func goDirective(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("dockerfile: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "go "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("dockerfile: %s: %w", gomod, err)
	}
	return "", nil
}
