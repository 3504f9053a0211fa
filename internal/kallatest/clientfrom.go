package kallatest

import (
	"net"
	"net/http"
)

// ClientFrom is an HTTP client whose connections leave from ip: any
// 127.0.0.0/8 address reaches a server on 127.0.0.1, so a test can be two
// clients of different addresses on one host (per-address limits).
func ClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}
