package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/rules"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with configuration files",
		Example: `  lakka config check /etc/lakka/lakka.yaml
  lakka config default > lakka.yaml`,
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigDefaultCmd(), newConfigExplainCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file: unknown keys, wrong types and invalid values",
		Long: `Check loads FILE strictly: every unknown key, value of the wrong type and
invalid value is reported with its key path, and the exit status is 1.
Rules are compiled as the edge compiles them: an error names the rule
(index and name) and the field (a bad regular expression, an unknown
pool, an action in the wrong phase).`,
		Example: "  lakka config check lakka.yaml",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("config check takes one FILE argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.LoadFile(args[0])
			if err != nil {
				return err
			}
			if _, err := rules.Compile(cfg.Rules, rules.Options{Pools: cfg.PoolNames()}); err != nil {
				return fmt.Errorf("config: %s:\n%w", args[0], err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return err
		},
	}
}

func newConfigDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "default",
		Short:   "Print the documented default configuration (config/example.yaml)",
		Example: "  lakka config default > lakka.yaml",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example)
			return err
		},
	}
}
