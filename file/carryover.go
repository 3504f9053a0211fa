package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kalla-dev/kalla"
)

// ReadResult implements kalla.ResultReader: carry-over reads the previous
// run's summary.json from its output folder.
func (o *Output) ReadResult(_ context.Context, name string) ([]byte, error) {
	path := o.Location(name)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, kalla.Invalid("", "file %q does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, kalla.Invalid("", "file %q is not readable: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// optionalFiles are result files only some jobs write (a carry-over job's
// expired rows); Publish moves those present, before summary.json.
var optionalFiles = []string{kalla.ExpiredLeftFile, kalla.ExpiredRightFile}

// publishNames lists the files of dir Publish moves, summary.json last.
func publishNames(dir string) []string {
	names := append([]string(nil), resultFiles[:len(resultFiles)-1]...)
	for _, name := range optionalFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			names = append(names, name)
		}
	}
	return append(names, kalla.SummaryFile)
}
