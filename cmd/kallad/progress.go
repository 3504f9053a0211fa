package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/schollz/progressbar/v3"

	"github.com/kalla-dev/kalla"
)

// progressDisplay renders job progress on a terminal: the stage, the rows
// read so far and, once known, the match count.
type progressDisplay struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newProgressDisplay(w io.Writer) *progressDisplay {
	// A spinner, not a percentage: a source's size is unknown until it
	// has been read, so a bar would sit at 0% through the longest stage.
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
	)
	return &progressDisplay{bar: bar}
}

func (d *progressDisplay) update(p kalla.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	desc := string(p.Stage)
	if p.Source != "" {
		desc += " " + p.Source
	}
	desc += fmt.Sprintf(" | %d rows read", p.RowsRead)
	if p.MatchedSoFar != nil {
		desc += fmt.Sprintf(" | %d matched", *p.MatchedSoFar)
	}
	d.bar.Describe(desc)
	d.bar.Add(1)
}

func (d *progressDisplay) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bar.Finish()
	d.bar.Exit()
}
