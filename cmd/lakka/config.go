package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with configuration files",
		Example: `  lakka config check /etc/lakka/lakka.yaml
  lakka config default > lakka.yaml`,
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigDefaultCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file: unknown keys, wrong types and invalid values",
		Long: `Check loads FILE strictly: every unknown key, value of the wrong type and
invalid value is reported with its key path, and the exit status is 1.`,
		Example: "  lakka config check lakka.yaml",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("config check takes one FILE argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := config.LoadFile(args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
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
