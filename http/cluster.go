package kallahttp

import (
	"context"
	"net/http"

	"github.com/kalla-dev/kalla/distributed"
)

// ClusterLister lists the live executors; *cluster.Members is one.
type ClusterLister interface {
	Executors(ctx context.Context) ([]distributed.ExecutorInfo, error)
}

// ClusterView is the body of GET /api/cluster.
type ClusterView struct {
	Executors []distributed.ExecutorInfo `json:"executors"`
}

func (s *Server) listExecutors(w http.ResponseWriter, r *http.Request) {
	view := ClusterView{Executors: []distributed.ExecutorInfo{}}
	if s.cfg.Cluster != nil {
		execs, err := s.cfg.Cluster.Executors(r.Context())
		if err != nil {
			s.log.Warn("list executors failed", "err", err)
			writeError(w, codeUnavailable, "", "the cluster membership could not be read; retry")
			return
		}
		if execs != nil {
			view.Executors = execs
		}
	}
	writeJSON(w, http.StatusOK, view)
}
