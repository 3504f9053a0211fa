package postgres

import (
	"context"
	"testing"

	"github.com/kalla-dev/kalla"
)

// Config.MinRangePages decides how finely a table is split, for sources
// opened through Opener and through named connections alike; zero keeps
// the default, under which a table of a few hundred pages is one split.
func TestConfigMinRangePages(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	seedLedger(t, tb, 40000) // a few hundred pages: under the default's 1024
	uri := tb.db.TableURI("ledger")
	conns, err := NewConnections(map[string]string{"ledger": uri})
	if err != nil {
		t.Fatal(err)
	}
	conns.Config = Config{MinRangePages: 16}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func() (kalla.Source, error)
		want int
	}{
		{"default", func() (kalla.Source, error) { return Opener(nil, Config{})(ctx, uri) }, 1},
		{"opener", func() (kalla.Source, error) { return Opener(nil, Config{MinRangePages: 16})(ctx, uri) }, 4},
		{"connection", func() (kalla.Source, error) {
			return conns.Open(ctx, ConnScheme+"://ledger?table="+tb.db.Schema+".ledger")
		}, 4},
	} {
		src, err := tc.open()
		if err != nil {
			t.Fatalf("%s: open: %v", tc.name, err)
		}
		splits, err := src.(*Source).Split(ctx, nil, 4)
		if err != nil {
			src.Close()
			t.Fatalf("%s: split: %v", tc.name, err)
		}
		if got := len(splits.Splits); got != tc.want {
			t.Errorf("%s: %d splits, want %d", tc.name, got, tc.want)
		}
		splits.Release()
		src.Close()
	}
}
