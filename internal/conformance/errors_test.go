package conformance

import (
	"errors"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

func asValidation(err error, v **kalla.ValidationError) bool { return errors.As(err, v) }

// testErrors: a missing, a denied and a malformed source each fail the job
// with a user error (a *ValidationError, so the API answers 400 naming the
// field) that names the source and holds no secret.
func testErrors(t *testing.T, k Kind) {
	classes := map[string]bool{}
	for _, b := range k.Bad {
		classes[b.Class] = true
		t.Run(b.Class+"_"+b.What, func(t *testing.T) {
			k.known(t)
			_, err := k.r.Run(t.Context(), matchNothing(t, b.URI), nil)
			if err == nil {
				t.Fatalf("%s source %s: no error", b.Class, kalla.RedactURI(b.URI))
			}
			t.Logf("stage %s: %v", kalla.ErrorStage(err), err)
			checkNoSecret(t, k, err)
			for _, n := range b.Names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error does not name %q: %v", n, err)
				}
			}
			var v *kalla.ValidationError
			if !asValidation(err, &v) {
				t.Errorf("not a user error (stage %s): %v", kalla.ErrorStage(err), err)
			} else if !strings.HasPrefix(v.Field, "sources[0]") {
				t.Errorf("error on field %q, want sources[0]: %v", v.Field, err)
			}
		})
	}
	if logs := k.logs.String(); logs == "" {
		t.Errorf("the runner logged nothing: the check below proves nothing")
	} else {
		checkNoSecretIn(t, k, "runner's log", logs)
	}
	if !classes["missing"] || !classes["denied"] {
		t.Errorf("the kind lists no missing or no denied source: %+v", k.Bad)
	}
}

// checkNoSecret fails t when err shows any of k's secrets.
func checkNoSecret(t *testing.T, k Kind, err error) {
	t.Helper()
	if err != nil {
		checkNoSecretIn(t, k, "error", err.Error())
	}
}

// checkNoSecretIn fails t when text, described by what, holds any of k's
// secrets; it names the secret's position, not the text.
func checkNoSecretIn(t *testing.T, k Kind, what, text string) {
	t.Helper()
	for i, s := range k.Secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the %s shows secret %d: %s", what, i, strings.ReplaceAll(text, s, "<SECRET>"))
		}
	}
}
