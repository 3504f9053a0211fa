package kalla

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AllowList is an operator's list of what a job may make Kalla reach: the
// hosts of callbacks or of databases, the local folders of sources and
// outputs, or S3 buckets. A job chooses these freely in its JSON, so on a
// shared server they are what stands between a client and the server's
// network (cloud metadata, internal services) and files.
//
// It is parsed from one comma-separated setting (KALLA_ALLOW_DB_HOSTS, ...):
// "*" allows everything (the default), "none" nothing; host entries are
// names ("db", "*.corp.example" — '*' also spans dots), IP addresses or CIDR
// ranges; path entries are folders (everything below them); bucket entries
// are names or patterns ("kalla-*").
//
// Hosts are checked twice: when a job is submitted (CheckHost) and on every
// connection, on the address actually dialled (DialContext), because a name
// can be re-pointed between the two. Link-local addresses (169.254.0.0/16,
// fe80::/10) and AWS's IPv6 metadata address are refused unless an IP or
// CIDR entry names them: "*" and name entries never reach the cloud
// metadata service, whose credentials are the server's.
//
// Paths are checked with symlinks and ".." resolved, so a link inside an
// allowed folder that points outside it is refused.
//
// A nil *AllowList allows everything a "*" list does.
type AllowList struct {
	setting  string // the variable it came from, named in refusals
	any      bool
	patterns []string       // lower-case path.Match patterns
	prefixes []netip.Prefix // from IP and CIDR entries
	roots    []string       // absolute folders, symlinks resolved
	// Resolver looks host names up; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// metadataPrefixes are refused to hosts unless an IP or CIDR entry covers
// them: link-local ranges, where clouds serve instance credentials, and
// AWS's IPv6 metadata endpoint (a unique-local address).
var metadataPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// lookupTimeout bounds a name lookup made while a job is submitted.
const lookupTimeout = 3 * time.Second

// NotAllowedError is a value a job may not use under an AllowList.
type NotAllowedError struct {
	Kind   string // "host", "address", "path", "bucket"
	Value  string
	Reason string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("%s %q is not allowed: %s", e.Kind, e.Value, e.Reason)
}

// ErrNotAllowed matches every *NotAllowedError with errors.Is.
var ErrNotAllowed = errors.New("not allowed")

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// ParseHostList parses a list of host names, name patterns, IP addresses
// and CIDR ranges; setting names the variable in messages.
func ParseHostList(setting, spec string) (*AllowList, error) {
	return parseList(setting, spec, func(a *AllowList, e string) error {
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			return nil
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			ip = ip.WithZone("").Unmap()
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			return nil
		}
		if strings.ContainsAny(e, "/:[]") {
			return fmt.Errorf("%q is neither a host name, an IP address nor a CIDR range", e)
		}
		return a.addPattern(e)
	})
}

// ParseNameList parses a list of names or patterns, such as S3 buckets.
func ParseNameList(setting, spec string) (*AllowList, error) {
	return parseList(setting, spec, func(a *AllowList, e string) error {
		if strings.Contains(e, "/") {
			return fmt.Errorf("%q: give a name or pattern, without '/'", e)
		}
		return a.addPattern(e)
	})
}

// ParsePathList parses a list of folders; relative ones are taken from the
// working folder. A folder need not exist yet.
func ParsePathList(setting, spec string) (*AllowList, error) {
	return parseList(setting, spec, func(a *AllowList, e string) error {
		root, err := realPath(e)
		if err != nil {
			return fmt.Errorf("%q: %w", e, err)
		}
		a.roots = append(a.roots, root)
		return nil
	})
}

func parseList(setting, spec string, add func(*AllowList, string) error) (*AllowList, error) {
	a := &AllowList{setting: setting}
	spec = strings.TrimSpace(spec)
	switch strings.ToLower(spec) {
	case "", "*":
		a.any = true
		return a, nil
	case "none":
		return a, nil
	}
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == "*" {
			return nil, fmt.Errorf("%s: \"*\" allows everything and must stand alone", setting)
		}
		if err := add(a, e); err != nil {
			return nil, fmt.Errorf("%s: %w", setting, err)
		}
	}
	return a, nil
}

func (a *AllowList) addPattern(e string) error {
	e = strings.ToLower(strings.TrimSuffix(e, "."))
	if _, err := path.Match(e, ""); err != nil {
		return fmt.Errorf("%q is a malformed pattern", e)
	}
	a.patterns = append(a.patterns, e)
	return nil
}

// String returns the setting's name, for logs.
func (a *AllowList) String() string {
	if a == nil {
		return "(any)"
	}
	return a.setting
}

func (a *AllowList) allowsAll() bool { return a == nil || a.any }

func (a *AllowList) matchName(name string) bool {
	if a == nil {
		return false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, p := range a.patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// CheckName checks a name, such as an S3 bucket.
func (a *AllowList) CheckName(kind, name string) error {
	if a.allowsAll() || a.matchName(name) {
		return nil
	}
	return &NotAllowedError{Kind: kind, Value: name, Reason: "it is not in " + a.setting}
}

// CheckAddr checks one address that host (a name, or "" when the address
// was given as such) resolves to.
func (a *AllowList) CheckAddr(host string, ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	explicit := false
	if a != nil {
		for _, p := range a.prefixes {
			if p.Contains(ip) {
				explicit = true
				break
			}
		}
	}
	for _, p := range metadataPrefixes {
		if p.Contains(ip) && !explicit {
			return &NotAllowedError{Kind: "address", Value: ip.String(), Reason: "it is link-local (cloud metadata): list it as an IP or CIDR in " +
				a.settingOr("the host allow-list") + " to allow it"}
		}
	}
	if explicit || a.allowsAll() || (host != "" && a.matchName(host)) {
		return nil
	}
	v := ip.String()
	if host != "" {
		v = host + " (" + v + ")"
	}
	return &NotAllowedError{Kind: "address", Value: v, Reason: "it is not in " + a.setting}
}

func (a *AllowList) settingOr(def string) string {
	if a == nil || a.setting == "" {
		return def
	}
	return a.setting
}

// CheckHost checks a host a job names, when it is submitted: an address
// as CheckAddr does; a name by the list's name entries and by the
// addresses it resolves to now. A name that does not resolve passes when
// it is allowed by name (it may resolve when the job runs; the dial checks
// again), and is refused otherwise.
func (a *AllowList) CheckHost(ctx context.Context, host string) error {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return a.CheckAddr("", ip)
	}
	named := a.allowsAll() || a.matchName(host)
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := a.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		if named {
			return nil
		}
		return &NotAllowedError{Kind: "host", Value: host, Reason: "it is not in " + a.setting + " and its addresses could not be checked"}
	}
	for _, ip := range ips {
		if err := a.CheckAddr(host, ip); err != nil {
			var na *NotAllowedError
			if errors.As(err, &na) {
				return &NotAllowedError{Kind: "host", Value: host, Reason: "it resolves to " + ip.Unmap().String() + ", and " + na.Reason}
			}
			return err
		}
	}
	return nil
}

// CheckURL checks the host of an http:// or https:// URL (a callback_url)
// as CheckHost does. Errors name the host only: the rest of the URL may
// carry the receiver's token.
func (a *AllowList) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("must be an http:// or https:// URL with a host")
	}
	return a.CheckHost(ctx, u.Hostname())
}

func (a *AllowList) resolver() *net.Resolver {
	if a == nil || a.Resolver == nil {
		return net.DefaultResolver
	}
	return a.Resolver
}

// DialContext returns a dial function, for net/http's Transport or pgx's
// DialFunc, that connects only to addresses the list allows. It resolves
// names itself and checks every address before connecting to it, so a name
// that resolves to a refused address, also after it was re-pointed since
// the job was submitted, is refused when connecting. Only TCP is allowed.
func (a *AllowList) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	c := &checkedDialer{list: a, dialer: d, viaName: map[netip.Addr]bool{}}
	return c.dial
}

// checkedDialer is the dialer of AllowList.DialContext.
type checkedDialer struct {
	list   *AllowList
	dialer *net.Dialer

	// viaName holds the addresses allowed through a name entry, so that
	// a later dial of the bare address (pgx's cancel request) is allowed
	// too. Only the answers for the operator's names end up here.
	mu      sync.Mutex
	viaName map[netip.Addr]bool
}

func (c *checkedDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("dial %s %s: only TCP connections are allowed", network, address)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	port, err := net.LookupPort(network, portText)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	ips, err := c.allowedAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range ips {
		if (network == "tcp4" && !ip.Is4()) || (network == "tcp6" && !ip.Is6()) {
			continue
		}
		conn, err := c.dialer.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dial %s: no %s address", address, network)
	}
	return nil, errs[0]
}

// allowedAddrs returns the addresses of host (a name or an address) that
// the list allows, or the first refusal when it allows none.
func (c *checkedDialer) allowedAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.WithZone("").Unmap()
		c.mu.Lock()
		remembered := c.viaName[ip]
		c.mu.Unlock()
		if !remembered {
			if err := c.list.CheckAddr("", ip); err != nil {
				return nil, err
			}
		}
		return []netip.Addr{ip}, nil
	}
	found, err := c.list.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	byName := !c.list.allowsAll() && c.list.matchName(host)
	var ips []netip.Addr
	var refusal error
	for _, ip := range found {
		ip = ip.WithZone("").Unmap()
		if err := c.list.CheckAddr(host, ip); err != nil {
			refusal = cmp.Or(refusal, err)
			continue
		}
		if byName {
			c.mu.Lock()
			c.viaName[ip] = true
			c.mu.Unlock()
		}
		ips = append(ips, ip)
	}
	if len(ips) == 0 {
		return nil, cmp.Or(refusal, fmt.Errorf("dial %s: no address found", host))
	}
	return ips, nil
}

// CheckPath checks a local path, with its symlinks and ".." resolved, the
// way the operating system will resolve them when the path is opened. A
// path that does not exist yet is resolved as far as it exists.
func (a *AllowList) CheckPath(p string) error {
	if a.allowsAll() {
		return nil
	}
	real, err := realPath(p)
	if err != nil {
		return &NotAllowedError{Kind: "path", Value: p, Reason: err.Error()}
	}
	for _, root := range a.roots {
		if real == root || strings.HasPrefix(real, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator)) {
			return nil
		}
	}
	reason := "it is outside the folders of " + a.setting
	if abs, err := filepath.Abs(p); err != nil || abs != real {
		reason = "it resolves to " + real + ", outside the folders of " + a.setting
	}
	return &NotAllowedError{Kind: "path", Value: p, Reason: reason}
}

// realPath returns p absolute, with symlinks and ".." resolved as far as p
// exists; the rest is appended. ".." is not cleaned away before resolving:
// after a symlink it names the link target's parent, as it does for open(2).
func realPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + string(filepath.Separator) + p
	}
	return resolveExisting(p, 0)
}

func resolveExisting(p string, depth int) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err == nil {
		return real, nil
	}
	// Split off the last element without cleaning, which would drop a
	// ".." before it, and resolve what exists of the rest.
	sep := string(filepath.Separator)
	trimmed := strings.TrimRight(p, sep)
	i := strings.LastIndex(trimmed, sep)
	if !errors.Is(err, fs.ErrNotExist) || i < 0 || depth > 255 {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	parent, err := resolveExisting(trimmed[:max(i, 1)], depth+1)
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, trimmed[i+1:]), nil
}
