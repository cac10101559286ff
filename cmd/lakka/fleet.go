package main

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/purge/bus"
)

func newFleetCmd() *cobra.Command {
	var (
		busURL  string
		file    string
		all     bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "List the edges on the purge bus: zone, readiness, last purge applied, lag and pending",
		Long: `Fleet reads the purge bus's members bucket, where every edge consuming the
bus announces itself about every second, and lists the live edges (entry
younger than 10 s; --all lists the others too, with their age): node id,
zone, admin address, whether it has caught up with the stream, the stream
sequence of the last purge it applied, how many purges the stream holds
after it (BEHIND), that purge's lag (applied minus issued) and the gaps it
found. The last line gives the stream's last sequence.`,
		Example: `  lakka fleet --bus nats://127.0.0.1:4222
  lakka fleet --config /etc/lakka/edge.yaml --all`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bc, err := busConfig(file, busURL, cmd.Flags().Changed("bus"))
			if err != nil {
				return err
			}
			b, err := bus.Connect(bc, bus.Options{Name: "lakka fleet"})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			defer b.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			ms, err := b.Members(ctx)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			head, err := b.Head(ctx)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			sort.Slice(ms, func(i, j int) bool {
				if ms[i].Zone != ms[j].Zone {
					return ms[i].Zone < ms[j].Zone
				}
				return ms[i].NodeID < ms[j].NodeID
			})
			now := time.Now()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tZONE\tADMIN\tSTATE\tAPPLIED\tBEHIND\tLAG\tGAPS\tSEEN")
			live := 0
			for _, m := range ms {
				if !m.Live(now) && !all {
					continue
				}
				state := "ready"
				switch {
				case !m.Live(now):
					state = "gone"
				case !m.Ready:
					state = "catching-up"
				}
				if m.Live(now) {
					live++
				}
				behind := "-" // its numbers count in another stream
				if m.Stream.Equal(head.Created) && head.Last >= m.Applied {
					behind = fmt.Sprint(head.Last - m.Applied)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%.1fs ago\n", m.NodeID, zoneName(m.Zone), m.Admin, state,
					m.Applied, behind, m.Lag.Round(time.Millisecond), m.Gaps, now.Sub(m.Updated).Seconds())
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d live edges; stream %s at seq %d\n", live, bc.Stream, head.Last)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&busURL, "bus", "", "the purge bus's NATS URL (purge.bus.url)")
	f.StringVar(&file, "config", "", "configuration file whose purge.bus section to use")
	f.BoolVar(&all, "all", false, "also list edges whose entry is older than 10 s")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "time allowed to read the bus")
	return cmd
}
