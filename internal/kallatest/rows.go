package kallatest

import (
	"database/sql"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// RowText is a row's columns joined by "|", with NULL for a null.
func RowText(vals []sql.NullString) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = "NULL"
		if v.Valid {
			parts[i] = v.String
		}
	}
	return strings.Join(parts, "|")
}

// SameRows fails t unless got and want hold the same rows in the same
// order. It shows both when they are short, and otherwise the row counts
// and the first row that differs.
func SameRows(t testing.TB, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	if len(got) <= 10 && len(want) <= 10 {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("%s: first difference at row %d:\n got  %q\n want %q", what, i, got[i], want[i])
			return
		}
	}
}

// TestLogger returns a logger that writes text lines at level and above to
// t.Log, so that they show only for failing tests (or with -v).
func TestLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
