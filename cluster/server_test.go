package cluster

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestServerToken(t *testing.T) {
	t.Parallel()
	srv, err := NewServer(ServerConfig{DataDir: t.TempDir(), Host: "127.0.0.1", Port: -1, Token: "s3cret", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := srv.Connect("own")
	if err != nil {
		t.Fatalf("own connection: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected")
	}
	nc, err = Connect(srv.ClientURL(), "executor", nats.Token("s3cret"))
	if err != nil {
		t.Fatalf("client with the token: %v", err)
	}
	nc.Close()
}

func TestServerConfigValidation(t *testing.T) {
	t.Parallel()
	for _, cfg := range []ServerConfig{{}, {DataDir: "x", Port: 70000}, {DataDir: "x", Port: -2}} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer accepted %+v", cfg)
		}
	}
}
