package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsCluster is a NATS cluster with JetStream run in the test process, on
// loopback without auth (an external cluster brings its own credentials),
// each server with its own store folder: what `--nats-url` points a
// scheduler at in production.
type natsCluster struct {
	t       *testing.T
	servers []*server.Server
}

// startNATSCluster starts n servers routed to each other (n 1: a single
// server) and waits until JetStream has a meta leader all servers follow.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	// Routes must name every server's cluster port before any starts, so
	// the ports are picked free first (held open together, so they differ).
	var routes []string
	var ports []int
	if n > 1 {
		var lns []net.Listener
		for range n {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, ln)
			port := ln.Addr().(*net.TCPAddr).Port
			ports = append(ports, port)
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", port))
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	dir := t.TempDir()
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "kalla-test", Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats server %s not ready", opts.ServerName)
		}
		c.servers = append(c.servers, s)
	}
	waitUntil(t, "a JetStream meta leader", func() bool {
		leader := false
		for _, s := range c.servers {
			if !s.JetStreamIsCurrent() {
				return false
			}
			leader = leader || s.JetStreamIsLeader()
		}
		return leader || n == 1
	})
	return c
}

// urls is the comma-separated client URLs of the running servers, as
// --nats-url takes them.
func (c *natsCluster) urls() string {
	var out []string
	for _, s := range c.servers {
		if s.Running() {
			out = append(out, s.ClientURL())
		}
	}
	return strings.Join(out, ",")
}

// jetStream connects the test to the cluster.
func (c *natsCluster) jetStream() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

// byName returns the server called name.
func (c *natsCluster) byName(name string) *server.Server {
	c.t.Helper()
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	c.t.Fatalf("no nats server %q", name)
	return nil
}

// streamInfo polls the info of stream until the cluster answers it (a
// stream without a leader does not).
func streamInfo(t *testing.T, js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	waitUntil(t, "stream "+stream+" to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err = s.Info(ctx)
		return err == nil && info.Cluster != nil && (info.Config.Replicas == 1 || info.Cluster.Leader != "")
	})
	return info
}
