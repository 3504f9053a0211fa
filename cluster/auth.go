package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Protected reports whether the cluster port runs in protected mode: no
// token, no NKEY and no client certificate authenticates clients, so only
// loopback clients (and this process's own in-process connection) are let
// in, whatever address the port is bound to. Like Redis' protected mode, it
// keeps a one-host setup working and an exposed one closed.
func (c *ServerConfig) Protected() bool {
	return c.Token == "" && len(c.NKeys) == 0 && c.TLSCAFile == ""
}

// validateAuth checks the credentials and TLS files of the config.
func (c *ServerConfig) validateAuth() error {
	if c.Token != "" && len(c.NKeys) > 0 {
		return errors.New("server config: a token and NKEYs are exclusive: choose one way to authenticate clients")
	}
	for i, k := range c.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return fmt.Errorf("server config: NKeys[%d] is not a public user NKEY (it starts with U; derive it from a seed with `nk -inkey SEEDFILE -pubout`)", i)
		}
	}
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("server config: TLS needs both a certificate and its key")
	case c.TLSCAFile != "" && c.TLSCertFile == "":
		return errors.New("server config: a client CA (mutual TLS) needs the server's own certificate and key")
	}
	return nil
}

// applyAuth sets the authentication and TLS options of the embedded
// server, and returns the options of this process's own connection.
func (s *Server) applyAuth(opts *server.Options) ([]nats.Option, error) {
	var own []nats.Option
	if s.cfg.TLSCertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: s.cfg.TLSCertFile, KeyFile: s.cfg.TLSKeyFile, CaFile: s.cfg.TLSCAFile, Verify: s.cfg.TLSCAFile != "",
		})
		if err != nil {
			return nil, fmt.Errorf("load the cluster port's TLS files: %w", err)
		}
		opts.TLSConfig = tc
		opts.TLS = true
		opts.TLSVerify = s.cfg.TLSCAFile != ""
		opts.TLSTimeout = 5
	}
	switch {
	case s.cfg.Token != "":
		opts.Authorization = s.cfg.Token
		own = append(own, nats.Token(s.cfg.Token))
	case len(s.cfg.NKeys) > 0:
		// This process signs in with a key of its own, made for this run:
		// the scheduler needs no seed on disk.
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("create the scheduler's own nkey: %w", err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("create the scheduler's own nkey: %w", err)
		}
		for _, k := range append([]string{pub}, s.cfg.NKeys...) {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
		}
		own = append(own, nats.Nkey(pub, kp.Sign))
	case s.cfg.Protected():
		opts.CustomClientAuthentication = loopbackOnly{log: s.cfg.Logger.With("component", "nats")}
	}
	return own, nil
}

// loopbackOnly is protected mode's authentication: a client is let in if
// it comes from a loopback address or from inside this process.
type loopbackOnly struct{ log *slog.Logger }

func (a loopbackOnly) Check(c server.ClientAuthentication) bool {
	addr := c.RemoteAddress()
	if isLocalAddr(addr) {
		return true
	}
	remote := "unknown"
	if addr != nil {
		remote = addr.String()
	}
	a.log.Warn("protected mode: refused a cluster client that is not on loopback; configure KALLA_CLUSTER_TOKEN, NKEYs or a client CA to accept it", "remote", remote)
	return false
}

// isLocalAddr reports whether a client's address is a loopback TCP address
// or an in-process connection (a net.Pipe, whose network is "pipe").
func isLocalAddr(addr net.Addr) bool {
	switch a := addr.(type) {
	case nil:
		return false
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	default:
		return a.Network() == "pipe"
	}
}

// ClientAuth is how an executor (or any client) authenticates to the
// cluster port and checks it: at most one of Token and NKeySeedFile, and
// the TLS files.
type ClientAuth struct {
	Token string
	// NKeySeedFile holds a user NKEY seed (SU...) or a NATS .creds file.
	NKeySeedFile string
	// CAFile is the CA the server's certificate must be signed by; empty
	// trusts the system's roots when the server speaks TLS.
	CAFile string
	// CertFile and KeyFile are this client's certificate, for a server
	// that requires one (mutual TLS).
	CertFile, KeyFile string
}

// Options returns the nats options of a; the files are read now, so a
// wrong path fails at start and not at the first reconnect.
func (a ClientAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.Token != "" && a.NKeySeedFile != "":
		return nil, errors.New("a cluster token and an NKEY seed are exclusive: choose one")
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("read the NKEY seed file %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("a client certificate needs both the certificate and its key")
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	// Check the files now: nats.Connect would only say so when it dials.
	var o nats.Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("cluster client TLS: %w", err)
		}
	}
	return opts, nil
}
