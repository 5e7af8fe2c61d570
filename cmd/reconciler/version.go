package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version overrides the module version from the build info, for release builds:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/reconciler
var version string

// buildInfo is what `reconciler version` reports.
type buildInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "unknown (built without module support)"
		}
		return b
	}
	if b.Version == "" {
		// "(devel)" without VCS stamping; a pseudo-version such as
		// v0.0.0-20260101120000-abcdef123456+dirty when go build ran in a git checkout.
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is the one line `reconciler --version` prints.
func versionLine() string {
	b := readBuildInfo()
	line := "reconciler " + b.Version
	if b.Commit != "" {
		line += " (commit " + short(b.Commit, 12)
		if b.Modified {
			line += ", modified"
		}
		line += ")"
	}
	return line + " " + b.GoVersion + " " + b.Platform
}

func versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit and Go version of this binary",
		Example: "  reconciler version\n  reconciler version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			case "", "text":
				commit := b.Commit
				if commit == "" {
					commit = "unknown (built outside a git checkout, or with -buildvcs=false)"
				} else {
					if b.CommitTime != "" {
						commit += " (" + b.CommitTime + ")"
					}
					if b.Modified {
						commit += ", with uncommitted changes"
					}
				}
				fmt.Fprintf(out, "version:  %s\ncommit:   %s\ngo:       %s %s\n", b.Version, commit, b.GoVersion, b.Platform)
				return nil
			default:
				return fmt.Errorf("-o %q: use text or json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// short returns the first n characters of s.
func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
