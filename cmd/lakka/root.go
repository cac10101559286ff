package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lakka",
		Short: "A caching reverse proxy for read-heavy news sites, with its origin and load tester",
		Long: `Lakka is a caching reverse proxy (edge) that keeps responses in RAM, takes
freshness from the origin's headers, serves stale content while it
revalidates and when the origin is down, collapses concurrent misses, and
purges by tag or URL. The same binary runs the bundled news origin and the
load-test harness.`,
		Example: `  lakka origin --listen 127.0.0.1:8000 --seed 200
  lakka edge --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 --backend 127.0.0.1:8000
  lakka config check lakka.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{err}
	})
	root.AddCommand(
		newVersionCmd(),
		newConfigCmd(),
		newEdgeCmd(),
		newPurgeCmd(),
		newStatsCmd(),
		newFleetCmd(),
		newOriginCmd(),
		newBenchCmd(),
	)
	return root
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
		if v != "" {
			return v
		}
	}
	return "devel"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of lakka",
		Example: "  lakka version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "lakka", buildVersion())
			return err
		},
	}
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}
