package cost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectionSnapshots holds one Snapshot per day, its id the date
// (YYYY-MM-DD, UTC).
const CollectionSnapshots = "lifecycle_snapshots"

// KindStorageGrowth is the alert kind of a growth anomaly.
const KindStorageGrowth = "storage_growth"

// ErrNoSnapshot is wrapped by LoadSnapshot when the day has no snapshot.
var ErrNoSnapshot = errors.New("no storage snapshot")

// Snapshot is how much every bucket held on one day.
type Snapshot struct {
	// Date is the UTC day, YYYY-MM-DD.
	Date  string    `json:"date" firestore:"date"`
	Taken time.Time `json:"taken" firestore:"taken"`
	// Bytes and Objects count every version, per bucket name.
	Bytes   map[string]int64 `json:"bytes" firestore:"bytes"`
	Objects map[string]int64 `json:"objects" firestore:"objects"`
}

// Snapshot returns the inventory's totals per bucket, dated by the UTC day
// it was taken.
func (inv *Inventory) Snapshot() Snapshot {
	b, o := inv.Totals()
	return Snapshot{Date: inv.Taken.UTC().Format(time.DateOnly), Taken: inv.Taken, Bytes: b, Objects: o}
}

// Alerter raises an alert (orchestrate adapts its notifier to it).
type Alerter interface {
	Alert(ctx context.Context, kind, message string) error
}

// Anomaly is storage that grew more than the threshold from one snapshot to
// the next.
type Anomaly struct {
	Date         string  `json:"date"`
	PreviousDate string  `json:"previous_date"`
	Threshold    float64 `json:"threshold"`
	// Buckets are the buckets that grew too much, by name.
	Buckets []Growth `json:"buckets"`
}

// Growth is one bucket's change between two snapshots.
type Growth struct {
	Bucket   string `json:"bucket"`
	Previous int64  `json:"previous_bytes"`
	Current  int64  `json:"current_bytes"`
	// Ratio is (Current-Previous)/Previous: 0.25 is +25%.
	Ratio float64 `json:"ratio"`
}

// Message says what grew, in bucket names and byte counts only.
func (a *Anomaly) Message() string {
	parts := make([]string, 0, len(a.Buckets))
	for _, g := range a.Buckets {
		parts = append(parts, fmt.Sprintf("%s grew %+.1f%% (%d -> %d bytes)", g.Bucket, g.Ratio*100, g.Previous, g.Current))
	}
	return fmt.Sprintf("storage grew more than %.1f%% from %s to %s: %s",
		a.Threshold*100, a.PreviousDate, a.Date, strings.Join(parts, "; "))
}

// CheckGrowth compares two snapshots and returns an anomaly naming every
// bucket whose bytes grew by more than threshold (0.2: +20%), or nil. A
// bucket that was empty or absent in prev has no baseline and is not
// checked.
func CheckGrowth(prev, cur Snapshot, threshold float64) *Anomaly {
	var out []Growth
	for _, bucket := range slices.Sorted(maps.Keys(cur.Bytes)) {
		p, c := prev.Bytes[bucket], cur.Bytes[bucket]
		if p <= 0 {
			continue
		}
		ratio := float64(c-p) / float64(p)
		if ratio > threshold {
			out = append(out, Growth{Bucket: bucket, Previous: p, Current: c, Ratio: ratio})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &Anomaly{Date: cur.Date, PreviousDate: prev.Date, Threshold: threshold, Buckets: out}
}

func snapshotDate(date string) error {
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return fmt.Errorf("snapshot date %q is not YYYY-MM-DD", date)
	}
	return nil
}

// SaveSnapshot stores s as the snapshot of its day, replacing one taken
// earlier that day.
func SaveSnapshot(ctx context.Context, fs *firestore.Client, s Snapshot) error {
	if err := snapshotDate(s.Date); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if _, err := fs.Collection(CollectionSnapshots).Doc(s.Date).Set(ctx, s); err != nil {
		return fmt.Errorf("save snapshot %s: %w", s.Date, err)
	}
	return nil
}

// LoadSnapshot reads the snapshot of date (YYYY-MM-DD). It wraps
// ErrNoSnapshot when there is none.
func LoadSnapshot(ctx context.Context, fs *firestore.Client, date string) (Snapshot, error) {
	if err := snapshotDate(date); err != nil {
		return Snapshot{}, fmt.Errorf("load snapshot: %w", err)
	}
	doc, err := fs.Collection(CollectionSnapshots).Doc(date).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Snapshot{}, fmt.Errorf("load snapshot %s: %w", date, ErrNoSnapshot)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("load snapshot %s: %w", date, err)
	}
	var s Snapshot
	if err := doc.DataTo(&s); err != nil {
		return Snapshot{}, fmt.Errorf("decode snapshot %s: %w", date, err)
	}
	return s, nil
}

// Watch saves cur, compares it with the previous day's snapshot and, when
// storage grew beyond threshold, raises a KindStorageGrowth alert. With no
// snapshot of the previous day there is nothing to compare and no alert. It
// returns the anomaly it alerted on, if any.
func Watch(ctx context.Context, fs *firestore.Client, alerter Alerter, cur Snapshot, threshold float64) (*Anomaly, error) {
	d, err := time.Parse(time.DateOnly, cur.Date)
	if err != nil {
		return nil, fmt.Errorf("watch storage growth: snapshot date %q is not YYYY-MM-DD", cur.Date)
	}
	prevDate := d.AddDate(0, 0, -1).Format(time.DateOnly)
	prev, loadErr := LoadSnapshot(ctx, fs, prevDate)
	if loadErr != nil && !errors.Is(loadErr, ErrNoSnapshot) {
		return nil, loadErr
	}
	if err := SaveSnapshot(ctx, fs, cur); err != nil {
		return nil, err
	}
	if loadErr != nil {
		return nil, nil
	}
	a := CheckGrowth(prev, cur, threshold)
	if a == nil {
		return nil, nil
	}
	if err := alerter.Alert(ctx, KindStorageGrowth, a.Message()); err != nil {
		return a, fmt.Errorf("alert storage growth on %s: %w", cur.Date, err)
	}
	return a, nil
}
