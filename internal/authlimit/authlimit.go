// Package authlimit slows down guessing of the scheduler's token: each
// client address has a bucket of failed attempts (a token bucket), and
// once it is empty every attempt from that address is refused, right
// token or wrong, until the bucket refills. Refusing the right token too
// is what makes it a limit: answering it while refusing wrong ones would
// tell a guesser when it found the token. Successful attempts take
// nothing from the bucket, so a client that knows the token is never
// slowed down.
//
// The job API's bearer token and the web console's login share one
// Limiter, so that a guesser gets no more tries by using both.
package authlimit

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Defaults: 10 failed attempts at once, then one more every 6 seconds
// (10 a minute); at most 10,000 addresses remembered.
const (
	DefaultBurst      = 10
	DefaultEvery      = 6 * time.Second
	DefaultMaxClients = 10000
)

// Config configures a Limiter; zero values take the defaults.
type Config struct {
	// Burst is how many failed attempts a client may make at once.
	Burst int
	// Every is how long a client waits for one more attempt once its
	// bucket is empty.
	Every time.Duration
	// MaxClients bounds the addresses remembered: beyond it, addresses
	// whose bucket is full again are forgotten first, then any.
	MaxClients int
	// Now is the clock; tests pass one they advance.
	Now func() time.Time
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (ClientAddr); none by default.
	TrustedProxies []netip.Prefix
}

// Limiter counts failed token attempts per client address. It is safe for
// concurrent use.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	clients map[string]*bucket
}

// bucket is a client's attempts left at a time.
type bucket struct {
	left float64
	at   time.Time
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, clients: map[string]*bucket{}}
}

// Attempt records an attempt from remoteAddr (a request's ClientAddr)
// whose token was good or not, and returns how long the client must wait
// when the attempt is refused, or 0 when the caller may answer it: let a
// good one in, refuse a wrong one as wrong. The decision and the count are
// taken together, so parallel guesses cannot overrun the bucket.
func (l *Limiter) Attempt(remoteAddr string, good bool) time.Duration {
	key := clientKey(remoteAddr)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[key]
	if b == nil {
		if good {
			return 0
		}
		l.makeRoom(now)
		b = &bucket{left: float64(l.cfg.Burst), at: now}
		l.clients[key] = b
	}
	l.refill(b, now)
	if b.left < 1 {
		return time.Duration(math.Ceil((1 - b.left) * float64(l.cfg.Every)))
	}
	if !good {
		b.left--
	}
	return 0
}

// refill adds the attempts earned since b was last seen.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if now.After(b.at) {
		b.left = min(float64(l.cfg.Burst), b.left+float64(now.Sub(b.at))/float64(l.cfg.Every))
	}
	b.at = now
}

// makeRoom forgets addresses, when MaxClients are remembered: those whose
// bucket has refilled (they owe nothing), else any, down to nine tenths of
// MaxClients. Freeing a tenth at once keeps a flood of new addresses cheap:
// freeing one would read every bucket, under the lock every attempt takes,
// for each new address (50,000 of them took 10 s).
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.clients) < l.cfg.MaxClients {
		return
	}
	for k, b := range l.clients {
		if l.refill(b, now); b.left >= float64(l.cfg.Burst) {
			delete(l.clients, k)
		}
	}
	keep := l.cfg.MaxClients - max(1, l.cfg.MaxClients/10)
	for k := range l.clients {
		if len(l.clients) <= keep {
			break
		}
		delete(l.clients, k)
	}
}

// clientKey is the address attempts are counted by: the IP, and for IPv6
// its /64, since one host usually holds a whole /64.
func clientKey(remoteAddr string) string {
	host, ip := remoteIP(remoteAddr)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// remoteIP splits a request's RemoteAddr (host:port, or a bare host) into
// its host and IP address; the IP is nil when the host is not one.
func remoteIP(remoteAddr string) (string, net.IP) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	return host, net.ParseIP(host)
}

// IsLoopback reports whether a request's RemoteAddr is a loopback address:
// protected mode's rule, which the API and the console share. A reverse
// proxy on the same host makes every client look local: such a setup
// needs the token.
func IsLoopback(remoteAddr string) bool {
	_, ip := remoteIP(remoteAddr)
	return ip != nil && ip.IsLoopback()
}

// RetryAfter is the value of a Retry-After header for a wait: whole
// seconds, rounded up.
func RetryAfter(wait time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10)
}
