package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/kalla-dev/kalla"
)

// testSeam drives the kalla.Source interface itself, as the engine and the
// cluster's tasks do, without a job around it: one split for n < 2, a
// Reading of exactly one shape, Local agreeing with it, splits whose rows
// (read through the engine's Attach and Load) add up to the source's, and
// Close safe twice.
func testSeam(t *testing.T, k Kind, uri string) {
	ctx := context.Background()
	src, err := k.r.Sources.Open(ctx, uri)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer src.Close()

	one, err := src.Split(ctx, nil, 1)
	if err != nil {
		t.Fatalf("split into 1: %v", err)
	}
	if len(one.Splits) != 1 {
		t.Errorf("split into 1 gave %d splits", len(one.Splits))
	}
	if err := one.Release(); err != nil {
		t.Errorf("release: %v", err)
	}

	rd, err := src.Read(ctx, kalla.Whole, t.TempDir())
	if err != nil {
		t.Fatalf("read whole: %v", err)
	}
	if (rd.Files == nil) == (rd.Rows == nil) {
		t.Errorf("read whole gave files %v and rows %v: want exactly one", rd.Files, rd.Rows)
	}
	if local := src.Local(); local != nil && (rd.Files == nil || *rd.Files != *local) {
		t.Errorf("Local is %+v but Read gave files %+v: a source read in place reads its local files", local, rd.Files)
	}

	want := reference(t, "SELECT count(*) FROM ("+largeData+")")
	for _, n := range []int{1, 4} {
		parts, err := src.Split(ctx, nil, n)
		if err != nil {
			t.Fatalf("split into %d: %v", n, err)
		}
		if len(parts.Splits) < 1 || len(parts.Splits) > max(n, 1) {
			t.Errorf("split into %d gave %d splits", n, len(parts.Splits))
		}
		var total int64
		for i, sp := range parts.Splits {
			total += loadSplit(t, k, src, sp, i)
		}
		if err := parts.Release(); err != nil {
			t.Errorf("release: %v", err)
		}
		if got := fmt.Sprint(total); len(want) != 1 || got != want[0] {
			t.Errorf("the %d splits of %d hold %s rows, want %v", len(parts.Splits), n, got, want)
		}
	}
	if err := src.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("close again: %v", err)
	}
}

// loadSplit attaches split i of src to an engine session, loads it and
// returns its row count.
func loadSplit(t *testing.T, k Kind, src kalla.Source, split kalla.SourceSplit, i int) int64 {
	t.Helper()
	ctx := context.Background()
	sess, err := k.r.NewSession(ctx, []kalla.Source{src})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Close()
	if _, err := sess.Attach(ctx, "left_src", src, split, nil); err != nil {
		t.Fatalf("attach split %d: %v", i, err)
	}
	n, err := sess.Load(ctx, "left_src", nil)
	if err != nil {
		t.Fatalf("load split %d: %v", i, err)
	}
	return n
}
