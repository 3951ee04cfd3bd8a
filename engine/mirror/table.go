package mirror

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteStatus prints a table of mirrors: position, blocks pushed, lag,
// state and last error; reach (if not empty) says whether each answered a
// probe. The CLI and the engine's /venti/mirrors file print the same.
func WriteStatus(w io.Writer, sts []Status, reach []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MIRROR\tPOSITION\tPUSHED\tLAG BLOCKS\tLAG BYTES\tSTATE\tLAST ERROR")
	for i, s := range sts {
		state := "stopped"
		switch {
		case s.Connected:
			state = "connected"
		case s.Running:
			state = "connecting"
		}
		if i < len(reach) && reach[i] != "" {
			state += ", " + reach[i]
		}
		lastErr := "-"
		if s.LastError != "" {
			lastErr = s.LastErrorAt.Format(time.RFC3339) + " " + s.LastError
		}
		pushed := fmt.Sprintf("%d blocks, %d bytes", s.Blocks, s.Bytes)
		if s.Skipped > 0 {
			pushed += fmt.Sprintf(" (%d damaged in the store, skipped)", s.Skipped)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%s\t%s\n", s.Addr, s.Pos, pushed, s.LagBlocks, s.LagBytes, state, lastErr)
	}
	return tw.Flush()
}
