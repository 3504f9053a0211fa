package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/kalla-dev/kalla/cluster"
)

// clusterAuthOptions are the credentials and TLS files of the cluster port:
// the server side on the scheduler, the client side on the executor.
// Secrets come from the environment or from files, never from a flag's
// value, which `ps` shows to every user of the host.
type clusterAuthOptions struct {
	tokenFile string
	// nkeysFile (scheduler) lists the public user NKEYs allowed in.
	nkeysFile string
	// seedFile (executor) holds this executor's NKEY seed.
	seedFile        string
	tlsCert, tlsKey string
	ca              string
	apiTokenFile    string
	scheduler       bool
}

// clusterAuthFlags registers the cluster port's security flags of the
// scheduler (server side) or the executor (client side).
func clusterAuthFlags(fs *flag.FlagSet, scheduler bool) *clusterAuthOptions {
	a := &clusterAuthOptions{scheduler: scheduler}
	fs.StringVar(&a.tokenFile, "cluster-token-file", env("", "KALLA_CLUSTER_TOKEN_FILE"), "file holding the cluster port's token, instead of KALLA_CLUSTER_TOKEN (env KALLA_CLUSTER_TOKEN_FILE)")
	fs.StringVar(&a.ca, "cluster-ca", env("", "KALLA_CLUSTER_CA"), map[bool]string{
		true:  "CA file of the executors' client certificates: the cluster port then requires one (mutual TLS; needs --cluster-tls-cert) (env KALLA_CLUSTER_CA)",
		false: "CA file the scheduler's TLS certificate must be signed by (env KALLA_CLUSTER_CA)",
	}[scheduler])
	if scheduler {
		fs.StringVar(&a.nkeysFile, "cluster-nkeys-file", env("", "KALLA_CLUSTER_NKEYS_FILE"), "file of the public user NKEYs (U..., one a line) allowed on the cluster port, instead of a token (env KALLA_CLUSTER_NKEYS_FILE)")
		fs.StringVar(&a.tlsCert, "cluster-tls-cert", env("", "KALLA_CLUSTER_TLS_CERT"), "certificate file (PEM) of the cluster port: it then speaks TLS only (env KALLA_CLUSTER_TLS_CERT)")
		fs.StringVar(&a.tlsKey, "cluster-tls-key", env("", "KALLA_CLUSTER_TLS_KEY"), "key file (PEM) of --cluster-tls-cert (env KALLA_CLUSTER_TLS_KEY)")
		fs.StringVar(&a.apiTokenFile, "api-token-file", env("", "KALLA_API_TOKEN_FILE"), "file holding the bearer token of /api/*, instead of KALLA_API_TOKEN (env KALLA_API_TOKEN_FILE)")
		return a
	}
	fs.StringVar(&a.seedFile, "cluster-nkey-seed-file", env("", "KALLA_CLUSTER_NKEY_SEED_FILE"), "file holding this executor's user NKEY seed (SU...) or a NATS .creds file, instead of a token (env KALLA_CLUSTER_NKEY_SEED_FILE)")
	fs.StringVar(&a.tlsCert, "cluster-tls-cert", env("", "KALLA_CLUSTER_TLS_CERT"), "client certificate file (PEM) for a scheduler that requires one (env KALLA_CLUSTER_TLS_CERT)")
	fs.StringVar(&a.tlsKey, "cluster-tls-key", env("", "KALLA_CLUSTER_TLS_KEY"), "key file (PEM) of --cluster-tls-cert (env KALLA_CLUSTER_TLS_KEY)")
	return a
}

// secret returns the value of the environment variable envName or the
// contents of file (trimmed of surrounding blanks); both set is an error.
func secret(envName, file, flagName string) (string, error) {
	v := os.Getenv(envName)
	if file == "" {
		return v, nil
	}
	if v != "" {
		return "", fmt.Errorf("%s and %s are both set: keep one", envName, flagName)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	v = string(bytes.TrimSpace(raw))
	if v == "" {
		return "", fmt.Errorf("%s %s: the file is empty", flagName, file)
	}
	return v, nil
}

// server fills the security fields of the embedded NATS server's config.
func (a *clusterAuthOptions) server(cfg *cluster.ServerConfig) error {
	token, err := secret("KALLA_CLUSTER_TOKEN", a.tokenFile, "--cluster-token-file")
	if err != nil {
		return err
	}
	cfg.Token = token
	if a.nkeysFile != "" {
		if cfg.NKeys, err = readNKeys(a.nkeysFile); err != nil {
			return err
		}
	}
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile = a.tlsCert, a.tlsKey, a.ca
	return nil
}

// checkExternal refuses the embedded server's settings with an external
// --nats-url, which they would not protect: its credentials and TLS are in
// the URL and the NATS server's own configuration.
func (a *clusterAuthOptions) checkExternal() error {
	for flag, v := range map[string]string{"--cluster-token-file": a.tokenFile, "--cluster-nkeys-file": a.nkeysFile,
		"--cluster-tls-cert": a.tlsCert, "--cluster-tls-key": a.tlsKey, "--cluster-ca": a.ca} {
		if v != "" {
			return fmt.Errorf("%s configures the embedded NATS server, which --nats-url replaces: give the external server's credentials in the URL (nats://user:password@host, tls://host)", flag)
		}
	}
	return nil
}

// readNKeys reads a file of public user NKEYs, one a line; blank lines and
// lines starting with # are skipped. A seed is refused: the scheduler needs
// only the public half.
func readNKeys(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--cluster-nkeys-file: %w", err)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "S"):
			return nil, fmt.Errorf("--cluster-nkeys-file %s line %d holds a seed: give the public key (`nk -inkey SEEDFILE -pubout`), the seed stays with its executor", file, n)
		case !strings.HasPrefix(line, "U"):
			return nil, fmt.Errorf("--cluster-nkeys-file %s line %d: not a public user NKEY (U...)", file, n)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--cluster-nkeys-file %s: no key in the file", file)
	}
	return keys, nil
}

// client returns the executor's connection options.
func (a *clusterAuthOptions) client() ([]nats.Option, error) {
	token, err := secret("KALLA_CLUSTER_TOKEN", a.tokenFile, "--cluster-token-file")
	if err != nil {
		return nil, err
	}
	return cluster.ClientAuth{Token: token, NKeySeedFile: a.seedFile, CAFile: a.ca, CertFile: a.tlsCert, KeyFile: a.tlsKey}.Options()
}

// apiToken returns the bearer token of /api/*, if any.
func (a *clusterAuthOptions) apiToken() (string, error) {
	return secret("KALLA_API_TOKEN", a.apiTokenFile, "--api-token-file")
}

// logProtectedMode says in one line at start which ports accept loopback
// clients only, and how to open them; a warning when the scheduler binds
// an address others can reach, since they will be refused.
func logProtectedMode(ctx context.Context, logger *slog.Logger, bindHost string, clusterPort, api bool) {
	var what, how []string
	if clusterPort {
		what = append(what, "the cluster port")
		how = append(how, "KALLA_CLUSTER_TOKEN (or --cluster-token-file, --cluster-nkeys-file, --cluster-ca)")
	}
	if api {
		what = append(what, "/api/*")
		how = append(how, "KALLA_API_TOKEN (or --api-token-file)")
	}
	if len(what) == 0 {
		return
	}
	level := slog.LevelWarn
	if ip := net.ParseIP(bindHost); bindHost == "localhost" || (ip != nil && ip.IsLoopback()) {
		level = slog.LevelInfo
	}
	logger.Log(ctx, level, "protected mode: "+strings.Join(what, " and ")+" will accept clients on loopback only, whatever --bind-host is; to accept others set "+strings.Join(how, " and "),
		"bind_host", bindHost)
}
