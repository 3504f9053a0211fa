package main

import (
	"flag"
	"fmt"
	"net/netip"

	"github.com/kalla-dev/kalla/internal/authlimit"
)

// proxyOptions is --trusted-proxies: the reverse proxies (an ingress, a
// load balancer) whose X-Forwarded-For the limit of wrong tokens believes,
// so that clients behind one proxy are not all counted as the proxy.
type proxyOptions struct {
	list string
	nets []netip.Prefix
}

func (p *proxyOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&p.list, "trusted-proxies", env("", "KALLA_TRUSTED_PROXIES"),
		"reverse proxies (CIDRs or IPs, comma-separated) whose X-Forwarded-For names the client that wrong tokens are counted for; only the token limit reads it (env KALLA_TRUSTED_PROXIES; default none)")
}

// validate parses the list; a bad entry stops the scheduler rather than
// leave every client behind the proxy sharing one count.
func (p *proxyOptions) validate() error {
	nets, err := authlimit.ParseTrustedProxies(p.list)
	if err != nil {
		return fmt.Errorf("--trusted-proxies (env KALLA_TRUSTED_PROXIES): %w", err)
	}
	p.nets = nets
	return nil
}
