package main

import (
	"errors"
	"fmt"
)

// object is the part of a Kubernetes object the reference checks read; the
// schemas have already checked its shape.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Selector       map[string]any `json:"selector"` // Deployment: {matchLabels}; Service: labels
		ScaleTargetRef struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		Ports []struct {
			Name       string `json:"name"`
			TargetPort any    `json:"targetPort"`
		} `json:"ports"`
		Triggers []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

type podSpec struct {
	Containers []struct {
		Name  string `json:"name"`
		Ports []struct {
			Name string `json:"name"`
		} `json:"ports"`
		ReadinessProbe *probe `json:"readinessProbe"`
		LivenessProbe  *probe `json:"livenessProbe"`
	} `json:"containers"`
	Volumes []struct {
		Name                  string `json:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `json:"claimName"`
		} `json:"persistentVolumeClaim"`
	} `json:"volumes"`
}

// checkReferences checks what the objects of a set of manifests say of each
// other, which no schema sees: a Deployment's selector matches its pod
// labels (the API server refuses it otherwise), every Service selects the
// pods of a Deployment that has its target ports, probes name ports their
// container has, every claimed PVC and every KEDA scale target is in the
// set.
func checkReferences(objs []object) error {
	has := map[string]bool{}
	for _, o := range objs {
		has[o.Kind+"/"+o.Metadata.Name] = true
	}
	var errs []error
	for _, o := range objs {
		where := o.Kind + " " + o.Metadata.Name
		switch o.Kind {
		case "Deployment":
			errs = append(errs, checkDeployment(where, o, has)...)
		case "Service":
			if err := checkService(where, o, objs); err != nil {
				errs = append(errs, err)
			}
		case "ScaledObject":
			kind := o.Spec.ScaleTargetRef.Kind
			if kind == "" {
				kind = "Deployment"
			}
			if !has[kind+"/"+o.Spec.ScaleTargetRef.Name] {
				errs = append(errs, fmt.Errorf("%s: scale target %s %s is in no manifest", where, kind, o.Spec.ScaleTargetRef.Name))
			}
		}
	}
	return errors.Join(errs...)
}

func checkDeployment(where string, o object, has map[string]bool) []error {
	var errs []error
	match, _ := o.Spec.Selector["matchLabels"].(map[string]any)
	if !selects(match, o.Spec.Template.Metadata.Labels) {
		errs = append(errs, fmt.Errorf("%s: selector %v does not match the pod labels %v", where, match, o.Spec.Template.Metadata.Labels))
	}
	pod := o.Spec.Template.Spec
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && !has["PersistentVolumeClaim/"+v.PersistentVolumeClaim.ClaimName] {
			errs = append(errs, fmt.Errorf("%s: volume %s claims %s, which is in no manifest", where, v.Name, v.PersistentVolumeClaim.ClaimName))
		}
	}
	for _, c := range pod.Containers {
		for _, p := range []*probe{c.ReadinessProbe, c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if name, ok := p.HTTPGet.Port.(string); ok && !hasPort(pod, name) {
				errs = append(errs, fmt.Errorf("%s: container %s probes port %q, which it does not name", where, c.Name, name))
			}
		}
	}
	return errs
}

func checkService(where string, svc object, objs []object) error {
	for _, o := range objs {
		if o.Kind != "Deployment" || !selects(svc.Spec.Selector, o.Spec.Template.Metadata.Labels) {
			continue
		}
		var errs []error
		for _, p := range svc.Spec.Ports {
			if name, ok := p.TargetPort.(string); ok && !hasPort(o.Spec.Template.Spec, name) {
				errs = append(errs, fmt.Errorf("%s: port %s targets %q, which Deployment %s does not name", where, p.Name, name, o.Metadata.Name))
			}
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s: selector %v selects the pods of no Deployment", where, svc.Spec.Selector)
}

// selects reports whether a non-empty selector matches labels.
func selects(selector map[string]any, labels map[string]string) bool {
	for k, v := range selector {
		if s, _ := v.(string); labels[k] != s {
			return false
		}
	}
	return len(selector) > 0
}

func hasPort(pod podSpec, name string) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}
