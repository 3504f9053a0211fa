package main

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// envAliases are the variables kallad reads besides those its -h names:
// the seed's names, secrets, and the AWS SDK's.
var envAliases = map[string]bool{
	"BALLISTA_PARTITIONS": true, "BIND_GRPC_PORT": true, "SCHEDULER_PORT": true, "GRPC_PORT": true,
	"KALLA_CLUSTER_TOKEN": true, "KALLA_API_TOKEN": true, "KALLA_S3_PATH_STYLE": true,
}

// kalladEnv returns the variables `kallad CMD -h` documents.
func kalladEnv(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	_, stderr, _ := kallad(t, t.TempDir(), cmd, "-h")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env ([A-Z_]+)`).FindAllStringSubmatch(stderr, -1) {
		out[m[1]] = true
	}
	if len(out) < 5 {
		t.Fatalf("kallad %s -h names %d variables:\n%s", cmd, len(out), stderr)
	}
	return out
}

func checkEnv(t *testing.T, where, cmd string, known map[string]bool, names []string) {
	t.Helper()
	for _, n := range names {
		if !known[n] && !envAliases[n] && !strings.HasPrefix(n, "AWS_") {
			t.Errorf("%s: kallad %s reads no variable %s", where, cmd, n)
		}
	}
}

// The compose files parse, run kallad subcommands that exist, and set only
// variables kallad reads.
func TestComposeFiles(t *testing.T) {
	t.Parallel()
	known := map[string]map[string]bool{"scheduler": kalladEnv(t, "scheduler"), "executor": kalladEnv(t, "executor")}
	for _, name := range []string{"docker-compose.single.yml", "docker-compose.cluster.yml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Services map[string]struct {
				Image       string            `yaml:"image"`
				Command     []string          `yaml:"command"`
				Environment map[string]string `yaml:"environment"`
				Healthcheck struct {
					Test []string `yaml:"test"`
				} `yaml:"healthcheck"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		seen := map[string]bool{}
		for svc, s := range doc.Services {
			if s.Image != "kalla/kallad:latest" {
				continue
			}
			if len(s.Command) == 0 || known[s.Command[0]] == nil {
				t.Errorf("%s: service %s runs %v", name, svc, s.Command)
				continue
			}
			seen[s.Command[0]] = true
			var names []string
			for k := range s.Environment {
				names = append(names, k)
			}
			checkEnv(t, name+" "+svc, s.Command[0], known[s.Command[0]], names)
			portVar := map[string]string{"scheduler": "HTTP_PORT", "executor": "BIND_PORT"}[s.Command[0]]
			checkHealthcheck(t, name+" "+svc, s.Healthcheck.Test, s.Environment[portVar])
		}
		if !seen["scheduler"] || (strings.Contains(name, "cluster") && !seen["executor"]) {
			t.Errorf("%s: kallad services %v", name, seen)
		}
	}
}

// The Kubernetes manifests parse, name their kinds, probe /health and
// /ready, and set only variables kallad reads.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	known := map[string]map[string]bool{"scheduler": kalladEnv(t, "scheduler"), "executor": kalladEnv(t, "executor")}
	files, _ := filepath.Glob(filepath.Join("..", "..", "deploy", "k8s", "*.yaml"))
	kinds := map[string]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, _ := doc["kind"].(string)
			meta, _ := doc["metadata"].(map[string]any)
			if doc["apiVersion"] == nil || kind == "" || meta["name"] == nil {
				t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", f)
				continue
			}
			kinds[kind]++
			if kind == "Deployment" {
				checkDeployment(t, f, doc, known)
			}
		}
	}
	for kind, want := range map[string]int{"Deployment": 2, "Service": 1, "ScaledObject": 1, "PersistentVolumeClaim": 2} {
		if kinds[kind] != want {
			t.Errorf("%d %s manifests, want %d", kinds[kind], kind, want)
		}
	}
}

func checkDeployment(t *testing.T, f string, doc map[string]any, known map[string]map[string]bool) {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string `yaml:"args"`
						Env  []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
						Readiness struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"readinessProbe"`
						Liveness struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"livenessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	raw, _ := yaml.Marshal(doc)
	if err := yaml.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if len(c.Args) == 0 || known[c.Args[0]] == nil {
			t.Errorf("%s: container runs %v", f, c.Args)
			continue
		}
		if c.Readiness.HTTPGet.Path != "/ready" || c.Liveness.HTTPGet.Path != "/health" {
			t.Errorf("%s: probes %q and %q, want /ready and /health", f, c.Readiness.HTTPGet.Path, c.Liveness.HTTPGet.Path)
		}
		var names []string
		for _, e := range c.Env {
			names = append(names, e.Name)
		}
		checkEnv(t, f, c.Args[0], known[c.Args[0]], names)
	}
}

// checkHealthcheck checks a kallad service's healthcheck: `kallad health
// URL` on the port the service serves /health on (port, from its
// environment), with arguments kallad accepts.
func checkHealthcheck(t *testing.T, where string, test []string, port string) {
	t.Helper()
	if len(test) != 4 || test[0] != "CMD" || test[1] != "kallad" || test[2] != "health" {
		t.Errorf("%s: healthcheck %q, want [CMD kallad health URL]", where, test)
		return
	}
	u, err := url.Parse(test[3])
	if err != nil || u.Port() != port || port == "" {
		t.Errorf("%s: healthcheck URL %s is not on the service's port %q", where, test[3], port)
	}
	// Healthy or not (whatever listens on that port here), the command
	// line is valid: a bad one exits 2.
	if _, stderr, code := kallad(t, t.TempDir(), test[2:]...); code == 2 {
		t.Errorf("%s: kallad %q: usage error: %s", where, test[2:], stderr)
	}
}

// The image sets the executor's probe port, exposes it with the API and
// cluster ports, and checks its health with kallad itself.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	env := regexp.MustCompile(`(?m)^ENV .*\bBIND_PORT=(\d+)`).FindStringSubmatch(text)
	expose := regexp.MustCompile(`(?m)^EXPOSE (.*)$`).FindStringSubmatch(text)
	if env == nil || expose == nil {
		t.Fatalf("Dockerfile lacks ENV BIND_PORT or EXPOSE")
	}
	ports := strings.Fields(expose[1])
	for _, p := range []string{"8080", "50050", env[1]} {
		if !slices.Contains(ports, p) {
			t.Errorf("EXPOSE %s lacks %s", expose[1], p)
		}
	}
	if !kalladEnv(t, "executor")["BIND_PORT"] {
		t.Errorf("kallad executor does not read BIND_PORT")
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["kallad", "health"\]$`).MatchString(text) {
		t.Errorf("no HEALTHCHECK running kallad health")
	}
}
