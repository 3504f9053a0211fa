package ui

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/kalla-dev/kalla"
)

// pageNames are the templates in templates/, each a "content" block that
// layout.html wraps.
var pageNames = []string{"runs", "run", "rows", "cluster", "submit", "login", "error"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"percent": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"when": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(now, t time.Time) string { return now.Sub(t).Round(100 * time.Millisecond).String() },
	"field": func(f *submitForm, name, label, value, hint string) formField {
		return formField{Name: name, Label: label, Value: value, Hint: hint, Error: f.Errors[name]}
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

// formField is one input of the submit form.
type formField struct{ Name, Label, Value, Hint, Error string }

// page is what layout.html renders.
type page struct {
	Title string
	// Nav is the section the page belongs to, highlighted in the menu.
	Nav  string
	CSRF string
	// LoggedIn shows the log-out button (token mode).
	LoggedIn bool
	Data     any
}

func contextWithCSRF(r *http.Request, token string) context.Context {
	return context.WithValue(r.Context(), csrfCtx, token)
}

func csrfOf(r *http.Request) string {
	s, _ := r.Context().Value(csrfCtx).(string)
	return s
}

// render writes the page name with data. It renders into a buffer first,
// so that a template error is a clean 500, not half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, CSRF: csrfOf(r), Data: data}
	if h.cfg.Token != "" {
		_, err := r.Cookie(sessionCookie)
		p.LoggedIn = err == nil && name != "login"
	}
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("render console page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an error page, or a JSON error to the live endpoints.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	msg = h.redact(msg)
	if isLive(r) {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	h.render(w, r, status, "error", http.StatusText(status), msg)
}

// redact masks secrets in a text shown on a page: the API already masks
// what it returns; this also catches the API token and every secret the
// process registered (kalla.AddSecrets), should one appear in an error.
func (h *handler) redact(s string) string {
	if h.cfg.Token != "" {
		return kalla.RedactText(s, h.cfg.Token)
	}
	return kalla.RedactText(s)
}
