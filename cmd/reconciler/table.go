package main

import (
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/swarm-reconciler/reconciler/spec"
)

// table is a plain-text table in the style of kubectl and docker: upper-case headers,
// columns padded with spaces, the last column not padded. One column may be coloured; the
// padding is computed on the text without colour codes, so the columns stay aligned.
type table struct {
	header []string
	rows   [][]string
	// colour returns the ANSI SGR code ("32" for green) of a cell, "" for none.
	colour func(col int, cell string) string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write prints the table to w, with colours when colour is true.
func (t *table) write(w io.Writer, colour bool) error {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for r, row := range append([][]string{t.header}, t.rows...) {
		for i, cell := range row {
			text := cell
			if colour && r > 0 && t.colour != nil {
				if code := t.colour(i, cell); code != "" {
					text = "\x1b[" + code + "m" + cell + "\x1b[0m"
				}
			}
			b.WriteString(text)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+3))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// phaseColour is the colour of a phase: green when Ready, yellow while work is under way or
// the app is degraded, red when it failed, grey when it is gone or frozen.
func phaseColour(p spec.Phase) string {
	switch p {
	case spec.PhaseReady:
		return "32"
	case spec.PhasePending, spec.PhaseDeploying, spec.PhaseUpgrading, spec.PhaseDeleting, spec.PhaseDegraded:
		return "33"
	case spec.PhaseFailed, spec.PhaseInvalid:
		return "31"
	case spec.PhaseDeleted, spec.PhaseExpired, spec.PhaseSuspended:
		return "90"
	}
	return ""
}

// colourOutput reports whether w is a terminal that should get colours: it must be this
// process's stdout and a character device, and neither NO_COLOR (https://no-color.org) nor
// TERM=dumb may say otherwise.
func colourOutput(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f != os.Stdout {
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// humanAge formats d as kubectl does in its AGE column (42s, 5m10s, 3h, 2d4h): apimachinery's
// HumanDuration, with a clock running behind the status writer's read as 0s.
func humanAge(d time.Duration) string { return duration.HumanDuration(max(d, 0)) }

// oneLine puts s on one line and cuts it to at most n characters (n <= 0: no limit).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if n > 0 && utf8.RuneCountInString(s) > n {
		r := []rune(s)
		return string(r[:n-1]) + "…"
	}
	return s
}

// orDash is s, or "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// completeApps is the shell completion of an APP argument: the apps with a status file or a
// spec file.
func completeApps(o *options) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_ = flagsFromEnv(cmd.Flags())
		seen := map[string]bool{}
		var apps []cobra.Completion
		if all, _ := spec.ListStatus(o.status); all != nil {
			for _, st := range all {
				if !seen[st.App] {
					seen[st.App] = true
					apps = append(apps, cobra.CompletionWithDesc(st.App, string(st.Phase)))
				}
			}
		}
		if entries, err := os.ReadDir(o.specs); err == nil {
			for _, e := range entries {
				if app, ok := spec.AppName(e.Name()); ok && !seen[app] {
					seen[app] = true
					apps = append(apps, cobra.CompletionWithDesc(app, "no status yet"))
				}
			}
		}
		return apps, cobra.ShellCompDirectiveNoFileComp
	}
}
