package cluster

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

// startServer starts an embedded server with cfg (DataDir, Port and Logger
// filled in) and stops it at the end of the test.
func startServer(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	cfg.DataDir, cfg.Port, cfg.Logger = t.TempDir(), -1, testLogger(t)
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	// The process's own connection gets in whatever the port requires.
	nc, err := srv.Connect("own")
	if err != nil {
		t.Fatalf("own connection: %v", err)
	}
	if _, err := JetStream(nc); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	return srv
}

// dial connects once, without retrying, and closes the connection; it
// returns the connection's error.
func dial(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	// The server says no to a wrong credential after the handshake:
	// a round trip makes sure it was heard.
	return nc.Flush()
}

// userSeed makes a user NKEY and writes its seed to a file.
func userSeed(t *testing.T) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}

// With NKEYs, only a client holding one of the allowed seeds gets in.
func TestServerNKeys(t *testing.T) {
	t.Parallel()
	allowed, allowedSeed := userSeed(t)
	_, otherSeed := userSeed(t)
	srv := startServer(t, ServerConfig{NKeys: []string{allowed}})
	ok, err := ClientAuth{NKeySeedFile: allowedSeed}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(srv.ClientURL(), ok...); err != nil {
		t.Errorf("the allowed key was refused: %v", err)
	}
	other, err := ClientAuth{NKeySeedFile: otherSeed}.Options()
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{"another key": other, "no credentials": nil, "a token": {nats.Token(allowed)}} {
		if err := dial(srv.ClientURL(), opts...); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}

// With a certificate, the port speaks TLS only; with a client CA, it
// requires a client certificate signed by it.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	files := kallatest.WriteTLSFiles(t, t.TempDir(), "127.0.0.1")
	stranger := kallatest.WriteTLSFiles(t, t.TempDir(), "127.0.0.1")
	srv := startServer(t, ServerConfig{TLSCertFile: files.ServerCert, TLSKeyFile: files.ServerKey, TLSCAFile: files.CA})
	if !strings.HasPrefix(srv.ClientURL(), "tls://") {
		t.Errorf("client URL %s, want tls://", srv.ClientURL())
	}
	opts := func(a ClientAuth) []nats.Option {
		o, err := a.Options()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if err := dial(srv.ClientURL(), opts(ClientAuth{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey})...); err != nil {
		t.Fatalf("a client with the CA and its certificate was refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		opts []nats.Option
		want string
	}{
		{"no CA: the server is not trusted", opts(ClientAuth{CertFile: files.ClientCert, KeyFile: files.ClientKey}), "certificate"},
		{"another CA: the server is not trusted", opts(ClientAuth{CAFile: stranger.CA, CertFile: stranger.ClientCert, KeyFile: stranger.ClientKey}), "certificate"},
		{"no client certificate", opts(ClientAuth{CAFile: files.CA}), ""},
		{"a client certificate of another CA", opts(ClientAuth{CAFile: files.CA, CertFile: stranger.ClientCert, KeyFile: stranger.ClientKey}), ""},
	} {
		if err := dial(srv.ClientURL(), tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: connected or wrong error: %v", tc.name, err)
		} else {
			t.Logf("%s: refused: %v", tc.name, err)
		}
	}
	// A client that does not speak TLS gets no answer to its PING.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.ClientURL(), "tls://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	info, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v), want tls_required", info, err)
	}
	_, _ = io.WriteString(conn, "CONNECT {\"verbose\":false}\r\nPING\r\n")
	rest, _ := io.ReadAll(conn)
	if strings.Contains(string(rest), "PONG") {
		t.Errorf("a plain-text client got %q", rest)
	}
}

// In protected mode (no credentials) a client on loopback gets in and one
// from another address of this host is refused, though the port listens
// on every address. With a token, that client gets in with it.
func TestServerProtectedMode(t *testing.T) {
	t.Parallel()
	ip := kallatest.NonLoopbackIP(t)
	for _, token := range []string{"", "s3cret"} {
		srv := startServer(t, ServerConfig{Host: "0.0.0.0", Token: token})
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.ClientURL(), "nats://"))
		local, remote := "nats://127.0.0.1:"+port, "nats://"+net.JoinHostPort(ip, port)
		var opts []nats.Option
		if token != "" {
			opts = append(opts, nats.Token(token))
		}
		if err := dial(local, opts...); err != nil {
			t.Errorf("token %q: loopback client refused: %v", token, err)
		}
		err := dial(remote, opts...)
		switch {
		case token == "" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization")):
			t.Errorf("protected mode: a client from %s: %v, want an authorization violation", ip, err)
		case token != "" && err != nil:
			t.Errorf("with the token, a client from %s was refused: %v", ip, err)
		}
		if srv.cfg.Protected() != (token == "") {
			t.Errorf("token %q: Protected() = %v", token, srv.cfg.Protected())
		}
	}
}

func TestServerAuthConfigValidation(t *testing.T) {
	t.Parallel()
	pub, _ := userSeed(t)
	for _, tc := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{Token: "t", NKeys: []string{pub}}, "exclusive"},
		{ServerConfig{NKeys: []string{"SUAM"}}, "NKeys[0]"},
		{ServerConfig{TLSCertFile: "c.pem"}, "both a certificate and its key"},
		{ServerConfig{TLSCAFile: "ca.pem"}, "needs the server's own certificate"},
	} {
		tc.cfg.DataDir = "x"
		if _, err := NewServer(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := (ClientAuth{Token: "t", NKeySeedFile: "x"}).Options(); err == nil {
		t.Errorf("a token and a seed were both accepted")
	}
	if _, err := (ClientAuth{CAFile: filepath.Join(t.TempDir(), "missing.pem")}).Options(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing CA file: %v", err)
	}
}
