package ui_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

var totalRe = regexp.MustCompile(`id="total">(\d+)<`)

// A result on S3 is copied for the console: its rows page and CSV hold the
// counts of its summary.json; once a later run publishes to the same
// prefix, the earlier run's page says so instead of showing the new files.
func TestResultOnS3(t *testing.T) {
	srv := kallatest.S3(t)
	srv.CreateBucket(t, "results")
	s := startScheduler(t, nil, srv.Env(t)...)
	runID := s.submit(t, exampleJob(t, "s3://results/daily"))
	res := s.waitState(t, runID, kalla.JobCompleted).Result
	var sum kalla.Result
	if err := json.Unmarshal(srv.Get(t, "results", "daily/summary.json"), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.RunID != runID || sum.UnmatchedRightCount != res.UnmatchedRightCount {
		t.Fatalf("summary.json on S3: %+v", sum)
	}

	c := client(t)
	code, body := get(t, c, s.url+"/ui/runs/"+runID)
	if code != 200 || !strings.Contains(body, "s3://results/daily/unmatched_right.parquet") {
		t.Fatalf("run page: %d, does not list the files on S3\n%s", code, body)
	}
	code, body = get(t, c, s.url+"/ui/runs/"+runID+"/rows/unmatched_right")
	m := totalRe.FindStringSubmatch(body)
	if code != 200 || m == nil || m[1] != strconv.FormatInt(sum.UnmatchedRightCount, 10) {
		t.Fatalf("rows page: %d, total %v, summary.json has %d unmatched right\n%s", code, m, sum.UnmatchedRightCount, body)
	}
	resp, err := c.Get(s.url + "/ui/runs/" + runID + "/download/unmatched_right?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || int64(len(recs)-1) != sum.UnmatchedRightCount {
		t.Fatalf("CSV from S3: %d rows (%v), summary.json has %d", len(recs)-1, err, sum.UnmatchedRightCount)
	}

	later := s.submit(t, exampleJob(t, "s3://results/daily"))
	s.waitState(t, later, kalla.JobCompleted)
	code, body = get(t, c, s.url+"/ui/runs/"+runID+"/rows/unmatched_right")
	if code != http.StatusNotFound || !strings.Contains(body, later) {
		t.Errorf("rows of a replaced result: %d, want 404 naming run %s\n%s", code, later, body)
	}
}
