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
	bar := progressbar.NewOptions(1000,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(false),
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
	overall := map[kalla.Stage]float64{kalla.StageStaging: 0, kalla.StageMatching: 0.5, kalla.StageWriting: 0.7}[p.Stage]
	weight := map[kalla.Stage]float64{kalla.StageStaging: 0.5, kalla.StageMatching: 0.2, kalla.StageWriting: 0.3}[p.Stage]
	d.bar.Set(int(1000 * (overall + weight*p.Progress)))
}

func (d *progressDisplay) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bar.Finish()
	d.bar.Exit()
}
