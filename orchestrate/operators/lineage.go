package operators

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dag"
)

// LineageSensor is done when every raw object of a day so far (objects named
// robot=<R>/date=<Day>/... in the raw bucket: raw files and database chunks,
// whose names carry the same date) has a lineage document
// ingestions/<names.RawID(name, generation)> in Firestore whose status is
// finished (lineage.Finished: done or failed). The waiting message names up
// to 10 stragglers (object names, never patient data) and their count.
//
// Day returns "YYYY-MM-DD". With MinObjects 0 (the default) a day with no raw
// objects is done; otherwise the day needs at least MinObjects raw objects.
// Objects under a date prefix whose names fall outside the raw layout never
// get lineage (the process worker rejects them) and are not waited for.
type LineageSensor struct {
	Storage    *storage.Client
	Firestore  *firestore.Client
	RawBucket  string
	Day        func(tc *dag.TaskContext) string
	MinObjects int

	batch int // lineage documents per GetAll; 0 means lineageBatch
}

// lineageBatch is how many lineage documents one GetAll reads.
const lineageBatch = 200

// maxStragglers is how many unfinished objects the waiting message names.
const maxStragglers = 10

type rawObject struct {
	name  string
	rawID string
}

// Poke lists the day's raw objects robot by robot and reads their lineage.
func (s *LineageSensor) Poke(ctx context.Context, tc *dag.TaskContext) (bool, string, error) {
	if s.Storage == nil || s.Firestore == nil || s.RawBucket == "" || s.Day == nil {
		return false, "", errors.New("lineage sensor: Storage, Firestore, RawBucket and Day are required")
	}
	day := s.Day(tc)
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return false, "", fmt.Errorf("lineage sensor: day %q is not YYYY-MM-DD", day)
	}
	objs, ignored, err := s.rawObjects(ctx, day)
	if err != nil {
		return false, "", err
	}
	if ignored > 0 {
		logger(tc).Warn("raw objects outside the raw layout are not waited for", "day", day, "count", ignored)
	}
	if len(objs) < s.MinObjects {
		return false, fmt.Sprintf("%d raw objects for %s in gs://%s, want at least %d", len(objs), day, s.RawBucket, s.MinObjects), nil
	}
	var stragglers []string
	col := s.Firestore.Collection(names.CollectionIngestions)
	size := cmp.Or(s.batch, lineageBatch)
	for start := 0; start < len(objs); start += size {
		batch := objs[start:min(start+size, len(objs))]
		refs := make([]*firestore.DocumentRef, len(batch))
		for i, o := range batch {
			refs[i] = col.Doc(o.rawID)
		}
		snaps, err := s.Firestore.GetAll(ctx, refs)
		if err != nil {
			return false, "", fmt.Errorf("read lineage of %s (%d documents from %s): %w", day, len(refs), batch[0].rawID, err)
		}
		for i, snap := range snaps {
			status := "no lineage"
			if snap.Exists() {
				var ing lineage.Ingestion
				if err := snap.DataTo(&ing); err != nil {
					return false, "", fmt.Errorf("decode lineage %s: %w", batch[i].rawID, err)
				}
				if lineage.Finished(ing.Status) {
					continue
				}
				status = ing.Status
			}
			stragglers = append(stragglers, batch[i].name+" ("+status+")")
		}
	}
	if len(stragglers) == 0 {
		return true, "", nil
	}
	msg := fmt.Sprintf("%d of %d raw objects of %s not finished: %s", len(stragglers), len(objs), day,
		strings.Join(stragglers[:min(len(stragglers), maxStragglers)], ", "))
	if len(stragglers) > maxStragglers {
		msg += fmt.Sprintf(", and %d more", len(stragglers)-maxStragglers)
	}
	return false, msg, nil
}

// rawObjects lists the live raw objects of day: the robot=<R>/ prefixes
// first, then each robot's date=<day>/ prefix. It returns the objects with a
// lineage ID and the number of objects without one.
func (s *LineageSensor) rawObjects(ctx context.Context, day string) ([]rawObject, int, error) {
	bucket := s.Storage.Bucket(s.RawBucket)
	var robots []string
	q := &storage.Query{Prefix: "robot=", Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, 0, fmt.Errorf("list robots in gs://%s: %w", s.RawBucket, err)
	}
	it := bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list robots in gs://%s: %w", s.RawBucket, err)
		}
		if a.Prefix == "" {
			continue // an object directly under robot=..., not a robot folder
		}
		robot := strings.TrimSuffix(strings.TrimPrefix(a.Prefix, "robot="), "/")
		if names.ValidRobot(robot) {
			robots = append(robots, a.Prefix)
		}
	}
	var objs []rawObject
	ignored := 0
	for _, robot := range robots {
		prefix := robot + "date=" + day + "/"
		q := &storage.Query{Prefix: prefix}
		if err := q.SetAttrSelection([]string{"Name", "Generation"}); err != nil {
			return nil, 0, fmt.Errorf("list gs://%s/%s: %w", s.RawBucket, prefix, err)
		}
		it := bucket.Objects(ctx, q)
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return nil, 0, fmt.Errorf("list gs://%s/%s: %w", s.RawBucket, prefix, err)
			}
			id, err := names.RawID(a.Name, a.Generation)
			if err != nil {
				ignored++
				continue
			}
			objs = append(objs, rawObject{name: a.Name, rawID: id})
		}
	}
	return objs, ignored, nil
}
