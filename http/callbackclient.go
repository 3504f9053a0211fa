package kallahttp

import (
	"net"
	"net/http"
	"time"

	"github.com/kalla-dev/kalla"
)

// NewCallbackClient returns the client callbacks are sent with. It connects
// only to addresses hosts allows, checked on every connection after the
// name is resolved, so a callback host re-pointed at the cloud metadata
// address after submission is still refused. It follows no redirect: a 3xx
// is the receiver's final answer, not retried, since following it would let
// whoever answers at callback_url send the server's requests anywhere. It
// ignores HTTP_PROXY and HTTPS_PROXY: through a proxy, the address checked
// would be the proxy's, not the receiver's.
func NewCallbackClient(hosts *kalla.AllowList, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           hosts.DialContext(&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
