package ui

import (
	"net/http"
	"time"

	"github.com/kalla-dev/kalla/distributed"
)

// clusterView is the data of the cluster page.
type clusterPageView struct {
	Executors []distributed.ExecutorInfo
	// QueueDepth is -1 when unknown.
	QueueDepth int
	Now        time.Time
}

func (h *handler) clusterPage(w http.ResponseWriter, r *http.Request) {
	var cv clusterView
	a, err := h.api.get(r.Context(), "/api/cluster", &cv)
	switch {
	case err != nil:
		h.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	case a.status != http.StatusOK:
		h.fail(w, r, a.status, a.err().Error)
		return
	}
	view := clusterPageView{Executors: cv.Executors, QueueDepth: -1, Now: time.Now()}
	if h.cfg.QueueDepth != nil {
		if n, err := h.cfg.QueueDepth(r.Context()); err == nil {
			view.QueueDepth = n
		} else {
			h.log.Warn("read queue depth", "err", err)
		}
	}
	h.render(w, r, http.StatusOK, "cluster", "Cluster", view)
}
