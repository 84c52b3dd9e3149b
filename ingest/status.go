package ingest

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/labplatform/platform/contracts/names"
)

// RobotStatus is what status reports for one robot.
type RobotStatus struct {
	Robot string `json:"robot"`
	// LastFile and LastObject: the most recently confirmed file or chunk.
	LastFile   string    `json:"last_file,omitempty"`
	LastObject string    `json:"last_object,omitempty"`
	LastAt     time.Time `json:"last_at,omitzero"`
	// LagSeconds: age (by mtime) of the oldest file not yet confirmed; 0
	// when nothing waits.
	LagSeconds float64 `json:"lag_seconds"`
	// BacklogFiles and BacklogBytes: files present and not confirmed (in
	// any state of completeness), plus database bytes after the checkpoint.
	BacklogFiles int   `json:"backlog_files"`
	BacklogBytes int64 `json:"backlog_bytes"`
	Shipped      int   `json:"shipped_files"`
}

// Status reads the checkpoint and scans the export root.
func Status(fsys FS, root string, ckpt *Checkpoint, now time.Time) ([]RobotStatus, error) {
	robots, err := fsys.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list export root %s: %w", root, err)
	}
	var out []RobotStatus
	for _, r := range robots {
		if !r.Dir || !names.ValidRobot(r.Name) {
			continue
		}
		st := RobotStatus{Robot: r.Name}
		recs, err := ckpt.Files(r.Name + "/")
		if err != nil {
			return nil, err
		}
		for key, rec := range recs {
			if !rec.Done {
				continue
			}
			st.Shipped++
			if rec.ShippedAt.After(st.LastAt) {
				st.LastAt, st.LastFile, st.LastObject = rec.ShippedAt, key, rec.Object
			}
		}
		dbs, err := ckpt.DBs(r.Name + "/")
		if err != nil {
			return nil, err
		}
		for key, db := range dbs {
			if db.ShippedAt.After(st.LastAt) {
				st.LastAt, st.LastFile, st.LastObject = db.ShippedAt, key, db.LastObject
			}
			if fi, err := fsys.Stat(filepath.Join(root, key)); err == nil && fi.ID == db.ID && fi.Size > db.Offset {
				st.BacklogBytes += fi.Size - db.Offset
			}
		}
		entries, err := fsys.ReadDir(filepath.Join(root, r.Name))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r.Name, err)
		}
		var oldest time.Time
		for _, e := range entries {
			if !e.Regular || skipName(e.Name) {
				continue
			}
			if rec, ok := recs[r.Name+"/"+e.Name]; ok && rec.Done && rec.Size == e.Size && rec.ModTime.Equal(e.ModTime) {
				continue
			}
			st.BacklogFiles++
			st.BacklogBytes += e.Size
			if oldest.IsZero() || e.ModTime.Before(oldest) {
				oldest = e.ModTime
			}
		}
		if !oldest.IsZero() {
			st.LagSeconds = now.Sub(oldest).Seconds()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Robot < out[j].Robot })
	return out, nil
}

// WriteStatus prints statuses as a table or as JSON.
func WriteStatus(w io.Writer, sts []RobotStatus, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"robots": sts})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROBOT\tSHIPPED\tBACKLOG FILES\tBACKLOG BYTES\tLAG\tLAST FILE\tLAST AT")
	for _, s := range sts {
		last := "-"
		if !s.LastAt.IsZero() {
			last = s.LastAt.UTC().Format(time.RFC3339)
		}
		file := s.LastFile
		if file == "" {
			file = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Robot, s.Shipped, s.BacklogFiles, s.BacklogBytes,
			(time.Duration(s.LagSeconds) * time.Second).String(), file, last)
	}
	return tw.Flush()
}
