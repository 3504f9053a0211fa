package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The scaling checks read what no schema sees in the probes and the KEDA
// trigger: a readiness probe that asks the wrong endpoint takes a busy
// scheduler out of its Service, and a query naming a metric kallad does not
// serve returns nothing, which KEDA reads as 0 and so never scales.
// docs/operations.md ("Readiness and executor autoscaling") explains the choices these checks hold.

// wantProbes are the paths each probe of a kallad container must ask:
// /ready fails only while the process cannot serve (starting, draining, job
// store unreachable), /health only when it is wedged.
var wantProbes = map[string]string{"readiness": "/ready", "liveness": "/health"}

// checkProbes checks that every kallad container of a Deployment has both
// probes, on the right paths.
func checkProbes(objs []object) error {
	var errs []error
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		where := o.Kind + " " + o.Metadata.Name
		for _, c := range o.Spec.Template.Spec.Containers {
			for _, pr := range []struct {
				kind string
				p    *probe
			}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
				want := wantProbes[pr.kind]
				switch {
				case pr.p == nil || pr.p.HTTPGet == nil:
					errs = append(errs, fmt.Errorf("%s: container %s has no HTTP %s probe (want GET %s)", where, c.Name, pr.kind, want))
				case pr.p.HTTPGet.Path != want:
					errs = append(errs, fmt.Errorf("%s: container %s's %s probe asks %q, want %s", where, c.Name, pr.kind, pr.p.HTTPGet.Path, want))
				}
			}
		}
	}
	return errors.Join(errs...)
}

var (
	metricRef = regexp.MustCompile(`kallad_[a-z0-9_]+`)
	funcName  = regexp.MustCompile(`([a-z_]+)\s*$`)
)

// aggregated reports whether the metric reference that starts at q[at] is
// inside a sum, max, min or avg, possibly through other functions
// (max(rate(x[1m]))): that gives the one element KEDA requires whatever
// the number of scheduler pods.
func aggregated(q string, at int) bool {
	depth := 0
	for i := at - 1; i >= 0; i-- {
		switch q[i] {
		case ')':
			depth++
		case '(':
			if depth > 0 {
				depth--
				continue
			}
			switch callee(q[:i]) {
			case "sum", "max", "min", "avg":
				return true
			}
		}
	}
	return false
}

// callee is the function whose call's "(" ends before, skipping a grouping
// clause ("sum by (pod) (" is sum's).
func callee(before string) string {
	before = strings.TrimRight(before, " \t\n")
	if strings.HasSuffix(before, ")") {
		if open := strings.LastIndex(before, "("); open >= 0 {
			before = strings.TrimRight(before[:open], " \t\n")
			before = strings.TrimSuffix(strings.TrimSuffix(before, "without"), "by")
		}
	}
	if m := funcName.FindStringSubmatch(before); m != nil {
		return m[1]
	}
	return ""
}

// checkScaledObjects checks every Prometheus trigger: its query names only
// metrics kallad serves (metrics, from the sources), each inside an
// aggregation, and its thresholds are numbers KEDA accepts.
func checkScaledObjects(objs []object, metrics map[string]bool) error {
	var errs []error
	for _, o := range objs {
		if o.Kind != "ScaledObject" {
			continue
		}
		for i, tr := range o.Spec.Triggers {
			where := fmt.Sprintf("ScaledObject %s: trigger %d", o.Metadata.Name, i)
			if tr.Type != "prometheus" {
				continue
			}
			q := tr.Metadata["query"]
			refs := metricRef.FindAllStringIndex(q, -1)
			if len(refs) == 0 {
				errs = append(errs, fmt.Errorf("%s: query %q names no kallad_ metric", where, q))
			}
			for _, r := range refs {
				name := q[r[0]:r[1]]
				if !metrics[name] && !metrics[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] {
					errs = append(errs, fmt.Errorf("%s: query names %s, which kallad does not serve (it serves %s)", where, name, strings.Join(sortedKeys(metrics), ", ")))
				}
				if !aggregated(q, r[0]) {
					errs = append(errs, fmt.Errorf("%s: %s is not inside sum()/max(): the query returns one element per scheduler pod, and KEDA refuses more than one", where, name))
				}
			}
			th, err := strconv.ParseFloat(tr.Metadata["threshold"], 64)
			if err != nil || th <= 0 {
				errs = append(errs, fmt.Errorf("%s: threshold %q must be a number above 0 (the demand one executor takes)", where, tr.Metadata["threshold"]))
			}
			if a, ok := tr.Metadata["activationThreshold"]; ok {
				if v, err := strconv.ParseFloat(a, 64); err != nil || v < 0 {
					errs = append(errs, fmt.Errorf("%s: activationThreshold %q must be a number, 0 or more", where, a))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// servedMetrics collects the metric names kallad's sources define: the
// string literals "kallad_..." of the root module's non-test Go files
// (deploy/ and benchmarks/ only read metrics).
func servedMetrics(root string) (map[string]bool, error) {
	names := map[string]bool{}
	exact := regexp.MustCompile(`^kallad_[a-z0-9_]+$`)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "deploy" || d.Name() == "benchmarks" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && exact.MatchString(s) {
					names[s] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the metric names from the sources: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no kallad_ metric defined in the Go sources under %s", root)
	}
	return names, nil
}

// checkScaling runs the probe and trigger checks on the objects of
// deploy/k8s, with the metrics of the sources under root.
func checkScaling(objs []object, root string) error {
	metrics, err := servedMetrics(root)
	if err != nil {
		return err
	}
	return errors.Join(checkProbes(objs), checkScaledObjects(objs, metrics))
}
