package kalla_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

func TestDecodeJobNamesTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, field, says string
	}{
		{"unknown field", `{"match_sql":"x","primary_key":{}}`, "primary_key", "unknown field"},
		{"wrong type", `{"sources":{"alias":"a"}}`, "sources", "must be an array"},
		{"wrong nested type", `{"sources":[{"alias":1}]}`, "sources.alias", "must be a string"},
		{"malformed", `{"match_sql":`, "", "malformed JSON"},
		{"empty", ``, "", "empty job"},
		{"trailing", `{} {}`, "", "unexpected data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kalla.DecodeJob(strings.NewReader(tc.body))
			var v *kalla.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("want a validation error, got %v", err)
			}
			if v.Field != tc.field || !strings.Contains(v.Message, tc.says) {
				t.Errorf("got %q / %q, want field %q mentioning %q", v.Field, v.Message, tc.field, tc.says)
			}
		})
	}
}

func TestFilterOperands(t *testing.T) {
	t.Parallel()
	cases := []struct {
		op    kalla.FilterOp
		value string
		want  []kalla.FilterValue
		err   string
	}{
		{kalla.OpEq, `"a'b"`, []kalla.FilterValue{{Text: "a'b", Kind: kalla.KindString}}, ""},
		{kalla.OpGt, `12.340`, []kalla.FilterValue{{Text: "12.340", Kind: kalla.KindNumber}}, ""},
		{kalla.OpNeq, `true`, []kalla.FilterValue{{Text: "true", Kind: kalla.KindBool}}, ""},
		{kalla.OpBetween, `[1, "2"]`, []kalla.FilterValue{{Text: "1", Kind: kalla.KindNumber}, {Text: "2", Kind: kalla.KindString}}, ""},
		{kalla.OpIn, `[]`, nil, "at least one"},
		{kalla.OpBetween, `[1,2,3]`, nil, "[low, high]"},
		{kalla.OpLike, `5`, nil, "string pattern"},
		{kalla.OpEq, `null`, nil, "required"},
		{kalla.OpEq, `{"a":1}`, nil, "string, number or boolean"},
		{kalla.OpIn, `[1, null]`, nil, "null"},
		{"", `1`, nil, "op"},
	}
	for _, tc := range cases {
		got, err := kalla.Filter{Column: "c", Op: tc.op, Value: []byte(tc.value)}.Operands()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: got %v, want error mentioning %q", tc.op, tc.value, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%s %s: got %v %v", tc.op, tc.value, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s %s: operand %d = %+v, want %+v", tc.op, tc.value, i, got[i], tc.want[i])
			}
		}
	}
}

func TestRedactURIHidesPasswords(t *testing.T) {
	t.Parallel()
	got := kalla.RedactURI("postgres://kalla:s3cr%40t@db:5432/x?table=t")
	if strings.Contains(got, "s3cr") || !strings.Contains(got, "kalla:xxxxx@db:5432") {
		t.Errorf("RedactURI = %q", got)
	}
	// A URI url.Parse rejects still loses its password.
	got = kalla.RedactURI("postgres://kalla:pa%zz@db:5432/x")
	if strings.Contains(got, "pa%zz") {
		t.Errorf("RedactURI of an unparsable URI = %q", got)
	}
}
