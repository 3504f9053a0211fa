package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"

	"github.com/kalla-dev/kalla"
)

// policyOptions are the allow-lists of what a job may reach, as written in
// flags or environment variables; see docs/security.md ("Outbound requests").
type policyOptions struct {
	CallbackHosts string
	DBHosts       string
	Paths         string
	S3Buckets     string
}

// policy is policyOptions parsed.
type policy struct {
	callbackHosts, dbHosts, paths, s3Buckets *kalla.AllowList
}

// policyFlags registers the allow-list flags with their env fallbacks.
// Every mode takes them: the scheduler checks jobs when they are
// submitted, and every process again when it connects or opens a path.
func policyFlags(fs *flag.FlagSet, o *policyOptions) {
	fs.StringVar(&o.CallbackHosts, "allow-callback-hosts", env("*", "KALLA_ALLOW_CALLBACK_HOSTS"),
		"hosts a job's callback_url may name: host names (*.example.com), IPs, CIDRs, or * for any; link-local (cloud metadata) addresses only when listed as an IP or CIDR (env KALLA_ALLOW_CALLBACK_HOSTS)")
	fs.StringVar(&o.DBHosts, "allow-db-hosts", env("*", "KALLA_ALLOW_DB_HOSTS"),
		"database hosts a job's postgres:// source may name, as --allow-callback-hosts (env KALLA_ALLOW_DB_HOSTS)")
	fs.StringVar(&o.Paths, "allow-paths", env("*", "KALLA_ALLOW_PATHS"),
		"folders a job's local sources and output_path must be in, symlinks resolved, or * for any (env KALLA_ALLOW_PATHS)")
	fs.StringVar(&o.S3Buckets, "allow-s3-buckets", env("*", "KALLA_ALLOW_S3_BUCKETS"),
		"S3 buckets a job may read and write: names, patterns (kalla-*), or * for any (env KALLA_ALLOW_S3_BUCKETS)")
}

// testDNSEnv points host lookups at a DNS server of the tests' own, to
// re-point a name between submission and connection. Tests only.
const testDNSEnv = "KALLA_TEST_DNS_SERVER"

// build parses the lists and logs them.
func (o policyOptions) build(logger *slog.Logger) (*policy, error) {
	var p policy
	var errs []error
	parse := func(dst **kalla.AllowList, fn func(string, string) (*kalla.AllowList, error), setting, spec string) {
		a, err := fn(setting, spec)
		errs = append(errs, err)
		*dst = a
	}
	parse(&p.callbackHosts, kalla.ParseHostList, "KALLA_ALLOW_CALLBACK_HOSTS", o.CallbackHosts)
	parse(&p.dbHosts, kalla.ParseHostList, "KALLA_ALLOW_DB_HOSTS", o.DBHosts)
	parse(&p.paths, kalla.ParsePathList, "KALLA_ALLOW_PATHS", o.Paths)
	parse(&p.s3Buckets, kalla.ParseNameList, "KALLA_ALLOW_S3_BUCKETS", o.S3Buckets)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if addr := os.Getenv(testDNSEnv); addr != "" {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		p.callbackHosts.Resolver, p.dbHosts.Resolver = r, r
	}
	logger.Info("outbound allow-lists", "callback_hosts", o.CallbackHosts, "db_hosts", o.DBHosts,
		"paths", o.Paths, "s3_buckets", o.S3Buckets)
	return &p, nil
}
