package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/manifests"
)

func recipesCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "recipes",
		Short: "List the recipes under --recipes: source, last fetch, newest tags",
		Long: "recipes lists every recipe repository under --recipes: its source (the origin's URL, without\n" +
			"credentials; \"local\" for none), when a reconciler last cloned or fetched it and with what\n" +
			"result, and its newest release tags. Recipes missing there are cloned on first use from\n" +
			"--recipe-url; versions a repository lacks are fetched from its origin when a spec names one.",
		Example: "  reconciler recipes\n" +
			"  reconciler recipes -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			list, err := manifests.Sources(o.recipes)
			if err != nil {
				return err
			}
			defer manifests.Cleanup()
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if list == nil {
					list = []manifests.RecipeSource{}
				}
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECIPE\tSOURCE\tLAST FETCH\tRESULT\tNEWEST TAGS")
			for _, s := range list {
				source, last, result := s.Source, "-", "-"
				if source == "" {
					source = "local"
				}
				if s.LastFetch != nil {
					last = s.LastOp + " " + s.LastFetch.Local().Format(time.DateTime)
					result = "ok"
					if s.LastError != "" {
						result = oneLine(s.LastError, 80)
					}
				}
				tags := strings.Join(s.Tags, " ")
				if s.Err != "" {
					tags = "(" + oneLine(s.Err, 80) + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Recipe, source, last, result, tags)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
