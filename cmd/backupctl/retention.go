package main

import (
	"context"
	"fmt"
	"time"

	"github.com/backupledger/backupledger/projections"
)

const helpRetention = `
Explains APP's retention, changing nothing: when each backup expires and
why, and whether a backup started now would be accepted or which rule
(quota, minimum interval) would refuse it, and until when. With --json,
prints the server's JSON.
`

// retention prints an app's retention: a dry run.
func retention(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	var r projections.RetentionView
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0], "retention"), &r)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	fmt.Fprintf(c.stdout, "Backups of %s are kept %s; quota %d of %d used.\n", r.App,
		time.Duration(r.RetentionSeconds)*time.Second, r.QuotaUsed, r.QuotaLimit)
	if len(r.Backups) > 0 {
		t := newTable(c.stdout, "ID", "NAME", "STATUS", "EXPIRES (UTC)", "IN", "WHY")
		for _, b := range r.Backups {
			exp := b.ExpiresAt
			t.row(b.ID, b.Name, b.Status, second(&exp), (time.Duration(b.ExpiresInSeconds) * time.Second).String(), b.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	switch n := r.NextBackup; {
	case n.Allowed:
		fmt.Fprintln(c.stdout, "A backup started now would be accepted.")
	case n.RetryAfterSeconds > 0:
		fmt.Fprintf(c.stdout, "A backup started now would be refused (%s): %s; retry in %s.\n", n.Code, n.Detail,
			time.Duration(n.RetryAfterSeconds)*time.Second)
	default:
		fmt.Fprintf(c.stdout, "A backup started now would be refused (%s): %s\n", n.Code, n.Detail)
	}
	return nil
}
