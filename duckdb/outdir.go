package duckdb

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// canWrite reports whether the session's database may write into dir:
// dir is below its own folder or a folder it was allowed.
func (s *Session) canWrite(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	abs += string(filepath.Separator)
	for _, f := range s.folders {
		if strings.HasPrefix(abs, f) {
			return true
		}
	}
	return false
}

// outDir returns where the session's database writes what belongs in dir:
// dir itself when the session may write there, else a fresh folder of its
// own whose files move returns moves into dir. The lockdown cannot allow a
// folder made after the session started (the output folder of a local job
// is made once the job is known to be valid), and DuckDB resolves links,
// so the files are moved: a rename on one file system, a copy across.
func (s *Session) outDir(dir string) (string, error) {
	if s.canWrite(dir) {
		return dir, nil
	}
	s.outs++
	out := filepath.Join(s.dir, fmt.Sprintf("out-%d", s.outs))
	if err := os.Mkdir(out, 0o700); err != nil {
		return "", fmt.Errorf("create output folder: %w", err)
	}
	return out, nil
}

// move moves the file or folder name from the folder from into the folder
// to, unless they are the same folder.
func move(from, to, name string) error {
	if from == to {
		return nil
	}
	src, dst := filepath.Join(from, name), filepath.Join(to, name)
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(path, target)
	})
	if err != nil {
		return fmt.Errorf("move %s into %s: %w", name, to, err)
	}
	return os.RemoveAll(src)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
