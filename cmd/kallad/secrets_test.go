package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Connections come from a JSON or YAML file and from KALLA_CONN_<NAME>; a
// name defined twice, or a URI that is not Postgres, stops the process
// with an error that shows no password.
func TestLoadConnections(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, file := range []string{
		write("c.json", `{"erp": "postgres://kalla:file-pw-1@db:5432/erp"}`),
		write("c.yaml", "erp: postgres://kalla:file-pw-1@db:5432/erp\n"),
	} {
		t.Setenv(envConnectionsFile, file)
		t.Setenv("KALLA_CONN_LEDGER", "postgres://kalla:env-pw-2@db/ledger")
		conns, err := loadConnections()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := strings.Join(conns.Names(), ","); got != "erp,ledger" {
			t.Errorf("%s: names %q", file, got)
		}
		if uri, err := conns.Resolve("conn://Ledger?table=t"); err != nil || !strings.HasPrefix(uri, "postgres://kalla:env-pw-2@db/ledger?") {
			t.Errorf("%s: conn://Ledger resolves to %q, %v", file, uri, err)
		}
	}
	for _, tc := range []struct{ file, env, says string }{
		{write("dup.json", `{"ledger": "postgres://u@h/d"}`), "postgres://kalla:env-pw-2@db/ledger", `"ledger" is defined both`},
		{write("bad.json", `{"erp": "mysql://kalla:file-pw-1@db/erp"}`), "", `connection "erp"`},
		{write("notamap.json", `["postgres://kalla:file-pw-1@db/erp"]`), "", "map of connection name"},
	} {
		t.Setenv(envConnectionsFile, tc.file)
		t.Setenv("KALLA_CONN_LEDGER", tc.env)
		_, err := loadConnections()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want an error saying %s", tc.file, err, tc.says)
			continue
		}
		if strings.Contains(err.Error(), "file-pw-1") || strings.Contains(err.Error(), "env-pw-2") {
			t.Errorf("%s: error shows a password: %v", tc.file, err)
		}
	}
}

// The store key: generated once (0600, one log line), read back at the next
// start, and a different key refused before the store is opened.
func TestStoreKey(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	t.Setenv(envStoreKey, "")
	t.Setenv(envStoreKeyFile, "")
	first, err := storeKey(dir, logger)
	if err != nil || len(first) != 64 {
		t.Fatalf("generated key %q, %v", first, err)
	}
	info, err := os.Stat(filepath.Join(dir, storeKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("store.key: %v %v", info, err)
	}
	if again, err := storeKey(dir, logger); err != nil || again != first {
		t.Errorf("second start: %q, %v; want the generated key", again, err)
	}
	if n := strings.Count(logs.String(), "generated a key"); n != 1 {
		t.Errorf("%d lines about the generated key:\n%s", n, logs.String())
	}
	t.Setenv(envStoreKey, "some-other-key")
	if _, err := storeKey(dir, logger); err == nil || !strings.Contains(err.Error(), envStoreKey) || strings.Contains(err.Error(), "some-other-key") {
		t.Errorf("a different key: %v", err)
	}
	t.Setenv(envStoreKey, "")
	if err := os.Remove(filepath.Join(dir, storeKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := storeKey(dir, logger); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("store.key removed: %v; want an error, not a new key", err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envStoreKeyFile, keyFile)
	if got, err := storeKey(dir, logger); err != nil || got != first {
		t.Errorf("the key from %s: %q, %v", envStoreKeyFile, got, err)
	}
}
