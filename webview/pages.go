package webview

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/swarm-reconciler/reconciler/spec"
)

// phases are every phase, in the order the counts and the filter list them: the ones that
// want an operator's eye first.
var phases = []spec.Phase{
	spec.PhaseFailed, spec.PhaseInvalid, spec.PhaseDegraded, spec.PhasePending, spec.PhaseDeploying,
	spec.PhaseUpgrading, spec.PhaseDeleting, spec.PhaseReady, spec.PhaseSuspended, spec.PhaseDeleted, spec.PhaseExpired,
}

// tone is the CSS class of a phase: what it asks of an operator. The text of the phase is
// always shown with it: colour is never the only sign.
func tone(p spec.Phase) string {
	switch p {
	case spec.PhaseReady:
		return "ok"
	case spec.PhaseFailed, spec.PhaseInvalid:
		return "bad"
	case spec.PhaseDegraded:
		return "warn"
	case spec.PhasePending, spec.PhaseDeploying, spec.PhaseUpgrading, spec.PhaseDeleting:
		return "busy"
	}
	return "quiet"
}

// row is one app in the list of /.
type row struct {
	App, Phase, Tone, Recipe, Version, Tier, Age, Since, Message string
}

func (s *Server) rowOf(st *spec.Status, now time.Time) row {
	r := row{App: st.App, Phase: string(st.Phase), Tone: tone(st.Phase), Recipe: st.Recipe, Version: st.Version,
		Tier: string(st.Tier), Message: st.Message, Age: "-"}
	if r.Phase == "" {
		r.Phase = "Unknown"
	}
	if r.Tier == "" && st.Recipe != "" {
		r.Tier = string(spec.TierInstall)
	}
	if since, ok := st.Since(); ok {
		r.Age = duration.HumanDuration(max(now.Sub(since), 0))
		r.Since = since.UTC().Format(time.RFC3339)
	}
	for _, f := range []*string{&r.Recipe, &r.Version, &r.Tier} {
		if *f == "" {
			*f = "-" // here, not in the template: a call there costs per cell of 1,000 rows
		}
	}
	return r
}

// count is the number of apps in one phase.
type count struct {
	Phase, Tone string
	N           int
	Selected    bool
}

// indexPage is what / shows.
type indexPage struct {
	Counts []count
	Total  int
	Rows   []row
	Phase  string // the phase filter, "" for all
	Query  string // the name filter
	Errors []string
	Now    string
}

// filter keeps the statuses whose phase is phase ("" for any) and whose app name contains
// query, ignoring case.
func filter(all []*spec.Status, phase, query string) []*spec.Status {
	query = strings.ToLower(strings.TrimSpace(query))
	var out []*spec.Status
	for _, st := range all {
		if (phase == "" || string(st.Phase) == phase) && strings.Contains(strings.ToLower(st.App), query) {
			out = append(out, st)
		}
	}
	return out
}

// counts are the apps per phase, phases without apps left out.
func counts(all []*spec.Status, selected string) []count {
	n := map[spec.Phase]int{}
	for _, st := range all {
		n[st.Phase]++
	}
	var out []count
	for _, p := range phases {
		if n[p] > 0 {
			out = append(out, count{Phase: string(p), Tone: tone(p), N: n[p], Selected: string(p) == selected})
		}
	}
	return out
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	all, err := spec.ListStatus(s.StatusDir)
	var errs []string
	if err != nil {
		if len(all) == 0 && !errors.Is(err, spec.ErrNotStatus) {
			s.fail(w, http.StatusInternalServerError, fmt.Errorf("%w: is --status the reconciler's status directory?", err))
			return
		}
		errs = strings.Split(err.Error(), "\n")
	}
	phase, query := r.URL.Query().Get("phase"), r.URL.Query().Get("q")
	if !slices.Contains(phases, spec.Phase(phase)) {
		phase = ""
	}
	now := s.now()
	page := indexPage{Counts: counts(all, phase), Total: len(all), Phase: phase, Query: query, Errors: errs,
		Now: now.UTC().Format(time.RFC3339)}
	for _, st := range filter(all, phase, query) {
		page.Rows = append(page.Rows, s.rowOf(st, now))
	}
	s.render(w, http.StatusOK, "index.html", page)
}

// appPage is what /apps/APP shows.
type appPage struct {
	St       *spec.Status
	Row      row
	History  []historyEntry
	Services []service
	SpecPath string
	Spec     string // the spec file as written, secret-looking env values hidden
	SpecErr  string
	Now      string
}

type historyEntry struct {
	Time, Ago, Phase, Tone, Message string
}

type service struct {
	spec.ServiceStatus
	Tone string
}

func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	st, err := spec.ReadStatus(s.StatusDir, app)
	if errors.Is(err, fs.ErrNotExist) || strings.ContainsAny(app, `/\`) || strings.HasPrefix(app, ".") ||
		err != nil && spec.ValidateAppName(app) != nil { // a name no file can have (a NUL): no such app, not a fault
		s.fail(w, http.StatusNotFound, fmt.Errorf("no status for app %q in %s: its spec may not be reconciled yet, or it was deleted and its status removed", app, s.StatusDir))
		return
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	now := s.now()
	page := appPage{St: st, Row: s.rowOf(st, now), Now: now.UTC().Format(time.RFC3339)}
	for i := len(st.History) - 1; i >= 0; i-- { // newest first
		h := st.History[i]
		page.History = append(page.History, historyEntry{Time: h.Time.UTC().Format(time.RFC3339), Phase: string(h.Phase),
			Tone: tone(h.Phase), Message: h.Message, Ago: duration.HumanDuration(max(now.Sub(h.Time), 0))})
	}
	for _, svc := range st.Services {
		t := "ok"
		if svc.Running < svc.Desired {
			t = "warn"
		}
		page.Services = append(page.Services, service{ServiceStatus: svc, Tone: t})
	}
	page.SpecPath, page.Spec, page.SpecErr = s.specOf(app)
	s.render(w, http.StatusOK, "app.html", page)
}

// specOf reads the app's spec file as written, with the values of secret-looking env keys
// hidden.
func (s *Server) specOf(app string) (path, text, problem string) {
	d, err := spec.LoadApp(s.SpecsDir, app, s.Defaults)
	if err != nil {
		return "", "", err.Error()
	}
	if d == nil || d.Path == "" {
		return "", "", "no spec file: the app is being deleted, or its spec was removed"
	}
	data, err := spec.ReadSpecFile(d.Path)
	if err != nil {
		return d.Path, "", err.Error()
	}
	return d.Path, hideSecrets(data), ""
}

// errorPage is what a failed request shows.
type errorPage struct {
	Code    int
	Status  string
	Message string
}

func (s *Server) fail(w http.ResponseWriter, code int, err error) {
	s.render(w, code, "error.html", errorPage{Code: code, Status: http.StatusText(code), Message: err.Error()})
}

// render executes a page into a buffer first, so a template error is a clean 500, not half a
// page.
func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		s.Log.Error(err, "render web view page", "page", name)
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}
