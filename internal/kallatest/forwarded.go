package kallatest

import "net/http"

// ClientVia is a client connecting from proxyIP that sends
// X-Forwarded-For: forwardedFor on every request, as a reverse proxy in
// front of the scheduler does for the client it forwards.
func ClientVia(proxyIP, forwardedFor string) *http.Client {
	c := ClientFrom(proxyIP)
	c.Transport = forwarding{next: c.Transport, xff: forwardedFor}
	return c
}

type forwarding struct {
	next http.RoundTripper
	xff  string
}

func (f forwarding) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.xff)
	return f.next.RoundTrip(r)
}
