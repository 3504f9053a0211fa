package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/postgres"
)

// The server's secrets come from the environment (or files it names), never
// from flags: a flag shows in `ps` and in the process's command line.
const (
	// envConnectionsFile names a JSON or YAML file of named connections:
	// {"erp": "postgres://kalla:secret@db:5432/erp"}.
	envConnectionsFile = "KALLA_CONNECTIONS_FILE"
	// envConnPrefix starts a variable that defines one named connection:
	// KALLA_CONN_ERP=postgres://... defines conn://erp.
	envConnPrefix = "KALLA_CONN_"
	// envStoreKey is the key that encrypts the embedded job store at rest;
	// envStoreKeyFile names a file that holds it.
	envStoreKey     = "KALLA_STORE_KEY"
	envStoreKeyFile = "KALLA_STORE_KEY_FILE"
)

// loadConnections reads the named connections that conn:// sources refer
// to, from KALLA_CONNECTIONS_FILE and KALLA_CONN_<NAME>. Every process that
// opens sources (run, scheduler, executor) needs the same definitions.
func loadConnections() (*postgres.Connections, error) {
	named := map[string]string{}
	if path := os.Getenv(envConnectionsFile); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s=%s: %w", envConnectionsFile, path, err)
		}
		// YAML is a superset of JSON: one decoder reads both.
		if err := yaml.Unmarshal(raw, &named); err != nil {
			return nil, fmt.Errorf("read %s=%s: want a map of connection name to postgres:// URI: %s", envConnectionsFile, path, kalla.RedactText(err.Error()))
		}
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, envConnPrefix)
		if !ok || name == "" || v == "" {
			continue // empty is unset, as for every other variable
		}
		name = strings.ToLower(name)
		if _, dup := named[name]; dup {
			return nil, fmt.Errorf("connection %q is defined both in %s and by %s", name, envConnectionsFile, k)
		}
		named[name] = v
	}
	conns, err := postgres.NewConnections(named)
	if err != nil {
		return nil, fmt.Errorf("named connections: %w", err)
	}
	return conns, nil
}

// storeKeyFile and storeKeyCheckFile live in --data-dir: the generated key
// (when the operator gives none) and a keyed hash that tells a wrong key
// from a damaged store.
const (
	storeKeyFile      = "store.key"
	storeKeyCheckFile = "store.key.check"
)

// storeKey returns the key that encrypts the embedded JetStream store under
// dataDir: KALLA_STORE_KEY, else the contents of KALLA_STORE_KEY_FILE, else
// <data-dir>/store.key, generated (mode 0600) on first start. It refuses a
// key that differs from the one the store was written with: NATS would skip
// the streams it cannot decrypt and Kalla would start on an empty store.
func storeKey(dataDir string, logger *slog.Logger) (string, error) {
	key, source, err := readStoreKey(dataDir, logger)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("kalla job store key check v1"))
	sum := hex.EncodeToString(mac.Sum(nil))
	checkPath := filepath.Join(dataDir, storeKeyCheckFile)
	old, err := os.ReadFile(checkPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(checkPath, []byte(sum+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", checkPath, err)
		}
	case err != nil:
		return "", fmt.Errorf("read %s: %w", checkPath, err)
	case !hmac.Equal([]byte(strings.TrimSpace(string(old))), []byte(sum)):
		return "", fmt.Errorf("the store key from %s is not the key the job store in %s was encrypted with: give the original key (%s or %s), or start on an empty --data-dir", source, dataDir, envStoreKey, envStoreKeyFile)
	}
	kalla.AddSecrets(key)
	return key, nil
}

// readStoreKey finds the key and says where it came from, for messages.
func readStoreKey(dataDir string, logger *slog.Logger) (key, source string, err error) {
	if k := os.Getenv(envStoreKey); k != "" {
		return k, envStoreKey, nil
	}
	if path := os.Getenv(envStoreKeyFile); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("read %s=%s: %w", envStoreKeyFile, path, err)
		}
		k := strings.TrimSpace(string(raw))
		if k == "" {
			return "", "", fmt.Errorf("%s=%s is empty", envStoreKeyFile, path)
		}
		return k, path, nil
	}
	path := filepath.Join(dataDir, storeKeyFile)
	raw, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(raw)) != "" {
		return strings.TrimSpace(string(raw)), path, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read store key %s: %w", path, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, storeKeyCheckFile)); err == nil {
		return "", "", fmt.Errorf("the job store in %s is encrypted, but no key is given and %s is missing: set %s or %s to its key", dataDir, path, envStoreKey, envStoreKeyFile)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate store key: %w", err)
	}
	k := hex.EncodeToString(b)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", "", fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write store key %s: %w", path, err)
	}
	logger.Info("generated a key that encrypts the job store at rest; keep it with the data, or set "+envStoreKey+"/"+envStoreKeyFile+" to keep it elsewhere", "path", path)
	return k, path, nil
}
