package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
