package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
)

// source is one raw object generation, as curated rows and lineage name it.
type source struct {
	object     string
	generation int64
}

func (s source) String() string { return s.object + "#" + strconv.FormatInt(s.generation, 10) }

// rawFile is one object of the raw bucket.
type rawFile struct {
	name string
	// listed is the generation listed; src.generation the one lineage and
	// curated rows use (the first one, for a lifecycle rewrite).
	listed int64
	src    source
	id     string // names.RawID; empty when the name is outside the layout
	lines  int64  // data lines: physical lines after the header
}

// ingestion is one lineage document.
type ingestion struct {
	id  string
	doc lineage.Ingestion
	raw *rawFile // nil when the raw object is gone
}

// curatedFile is one Parquet object under results/.
type curatedFile struct {
	name string
	day  civil.Date // from the name
	rows []curatedRow
	bad  error // not readable as a curated file
}

// curatedRow is what the checks need of a curated row.
type curatedRow struct {
	src          source
	line         int64
	sample, test string
	day          civil.Date // of collected_at, UTC
}

// quarantineFile is one CSV object under rows/.
type quarantineFile struct {
	name  string
	src   source
	known bool // src was found for the name
	rows  []quarantineRow
	bad   error // not readable as a quarantine file
}

// sourceLines are the lines of one source found in the outputs.
type sourceLines struct {
	curated, quarantined, superseded []int64
}

// sources reads the raw objects, lineage, curated and quarantine files and
// checks source_rows.
func (a *auditor) sources(ctx context.Context) error {
	ings, err := a.readLineage(ctx)
	if err != nil {
		return err
	}
	raws, err := a.listRaw(ctx)
	if err != nil {
		return err
	}
	curated, err := a.listCurated(ctx)
	if err != nil {
		return err
	}
	quarantined, err := a.listQuarantine(ctx)
	if err != nil {
		return err
	}

	byID := make(map[string]*ingestion, len(ings))
	for _, ing := range ings {
		byID[ing.id] = ing
	}
	// The quarantine file of every source raw objects and lineage know of.
	qSource := map[string]source{}
	addQ := func(s source) {
		if n, err := names.QuarantineObject(s.object, s.generation); err == nil {
			qSource[n] = s
		}
	}
	for _, ing := range ings {
		addQ(source{ing.doc.Object, ing.doc.Generation})
	}
	for _, r := range raws {
		addQ(r.src)
		if ing := byID[r.id]; ing != nil && r.id != "" {
			ing.raw = r
		}
	}
	for _, q := range quarantined {
		q.src, q.known = qSource[q.name]
	}

	// Read every object: raw line counts, curated rows, quarantine rows.
	var tasks []func(context.Context) error
	for _, r := range raws {
		if r.id != "" && byID[r.id] != nil && byID[r.id].doc.Status == lineage.StatusDone {
			tasks = append(tasks, func(ctx context.Context) error { return a.countLines(ctx, r) })
		}
	}
	for _, f := range curated {
		tasks = append(tasks, func(ctx context.Context) error { return a.readCurated(ctx, f) })
	}
	for _, q := range quarantined {
		tasks = append(tasks, func(ctx context.Context) error { return a.readQuarantine(ctx, q) })
	}
	if err := parallel(ctx, a.opts.Parallelism, tasks, func(ctx context.Context, f func(context.Context) error) error { return f(ctx) }); err != nil {
		return err
	}

	lines := map[source]*sourceLines{}
	at := func(s source) *sourceLines {
		l := lines[s]
		if l == nil {
			l = &sourceLines{}
			lines[s] = l
		}
		return l
	}
	curatedByName := make(map[string]*curatedFile, len(curated))
	for _, f := range curated {
		curatedByName[f.name] = f
		if f.bad != nil {
			a.violate(InvariantSourceRows, f.name, "curated file unreadable: %v", f.bad)
			continue
		}
		for _, r := range f.rows {
			l := at(r.src)
			l.curated = append(l.curated, r.line)
		}
	}
	quarantineByName := make(map[string]*quarantineFile, len(quarantined))
	for _, q := range quarantined {
		quarantineByName[q.name] = q
		switch {
		case q.bad != nil:
			a.violate(InvariantSourceRows, q.name, "quarantine file unreadable: %v", q.bad)
			continue
		case !q.known:
			a.violate(InvariantSourceRows, q.name, "quarantine file of no raw object or lineage document (%d rows)", len(q.rows))
			continue
		}
		l := at(q.src)
		for _, r := range q.rows {
			if r.superseded {
				l.superseded = append(l.superseded, r.line)
			} else {
				l.quarantined = append(l.quarantined, r.line)
			}
		}
	}
	a.rep.CuratedFiles, a.rep.QuarantineFiles = len(curated), len(quarantined)

	// Raw objects and their lineage.
	a.rep.Files = len(raws)
	for _, r := range raws {
		ing := byID[r.id]
		switch {
		case r.id == "":
			a.rep.NotFinished++
			continue // violation recorded by listRaw
		case ing == nil:
			a.rep.NotFinished++
			a.violate(InvariantSourceRows, r.name, "no lineage document %s: the object was never processed", r.id)
			continue
		case ing.doc.Status == lineage.StatusDone:
			a.rep.Done++
		case ing.doc.Status == lineage.StatusFailed:
			a.rep.Failed++
			a.violate(InvariantSourceRows, r.name, "lineage status failed: %s", ing.doc.Error)
			continue
		default:
			a.rep.NotFinished++
			a.violate(InvariantSourceRows, r.name, "lineage status %q, not done (attempt %d%s)", ing.doc.Status, ing.doc.Attempt, errorSuffix(ing.doc.Error))
			continue
		}
	}

	// Every lineage document: done ones against the files.
	claimed := map[string]bool{} // curated objects listed by done lineage
	known := map[source]bool{}
	for _, ing := range ings {
		d := &ing.doc
		s := source{d.Object, d.Generation}
		known[s] = true
		subject := d.Object
		if subject == "" {
			subject = names.CollectionIngestions + "/" + ing.id
		}
		if d.Status != lineage.StatusDone {
			if ing.raw == nil {
				a.violate(InvariantSourceRows, subject, "lineage status %q and the raw object generation %d is gone%s", d.Status, d.Generation, errorSuffix(d.Error))
			}
			continue
		}
		if ing.raw == nil {
			a.rep.LineageOnly++
		}
		a.rep.RowsIn += d.RowsIn
		a.rep.RowsValid += d.RowsValid
		a.rep.RowsQuarantined += d.RowsQuarantined
		a.rep.RowsSuperseded += d.RowsSuperseded
		for _, o := range d.Outputs {
			if o.Bucket == names.CuratedBucket(a.prefix) {
				claimed[o.Object] = true
			}
		}
		a.checkIngestion(subject, ing, lines[s], curatedByName, quarantineByName)
	}
	for _, f := range curated {
		if !claimed[f.name] && f.bad == nil {
			a.violate(InvariantSourceRows, f.name, "curated file with %d rows that no done lineage lists as an output", len(f.rows))
		}
	}
	for s, l := range lines {
		if !known[s] {
			a.violate(InvariantSourceRows, s.object, "%d curated, %d quarantined and %d superseded rows of generation %d, which has no lineage document",
				len(l.curated), len(l.quarantined), len(l.superseded), s.generation)
		}
	}
	a.ingestions, a.curated = ings, curated
	return nil
}

func errorSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

// checkIngestion holds a done lineage document to the files.
func (a *auditor) checkIngestion(subject string, ing *ingestion, l *sourceLines, curated map[string]*curatedFile, quarantined map[string]*quarantineFile) {
	d := &ing.doc
	if l == nil {
		l = &sourceLines{}
	}
	if d.RowsIn != d.RowsValid+d.RowsQuarantined+d.RowsSuperseded {
		a.violate(InvariantSourceRows, subject, "lineage rows_in %d != valid %d + quarantined %d + superseded %d",
			d.RowsIn, d.RowsValid, d.RowsQuarantined, d.RowsSuperseded)
	}
	var counts []string
	if n := int64(len(l.curated)); n != d.RowsValid {
		counts = append(counts, fmt.Sprintf("rows_valid %d, curated rows %d", d.RowsValid, n))
	}
	if n := int64(len(l.quarantined)); n != d.RowsQuarantined {
		counts = append(counts, fmt.Sprintf("rows_quarantined %d, quarantine rows %d", d.RowsQuarantined, n))
	}
	if n := int64(len(l.superseded)); n != d.RowsSuperseded {
		counts = append(counts, fmt.Sprintf("rows_superseded %d, superseded quarantine rows %d", d.RowsSuperseded, n))
	}
	if ing.raw != nil && ing.raw.lines != d.RowsIn {
		counts = append(counts, fmt.Sprintf("rows_in %d, data lines in the raw object %d", d.RowsIn, ing.raw.lines))
	}
	if len(counts) > 0 {
		a.violate(InvariantSourceRows, subject, "lineage differs from the files: %s", strings.Join(counts, "; "))
	}

	for _, o := range d.Outputs {
		if o.Bucket != names.CuratedBucket(a.prefix) {
			a.violate(InvariantSourceRows, subject, "output %s in bucket %s, not %s", o.Object, o.Bucket, names.CuratedBucket(a.prefix))
			continue
		}
		f := curated[o.Object]
		switch {
		case f == nil:
			a.violate(InvariantSourceRows, subject, "output %s (%d rows) does not exist", o.Object, o.Rows)
		case f.bad != nil:
			// reported with the file
		case int64(len(f.rows)) != o.Rows || f.day.String() != o.Day:
			a.violate(InvariantSourceRows, subject, "output %s: lineage says %d rows of %s, the file has %d rows under %s",
				o.Object, o.Rows, o.Day, len(f.rows), f.day)
		}
	}
	if q := d.Quarantine; q != nil {
		f := quarantined[q.Object]
		switch {
		case f == nil:
			a.violate(InvariantSourceRows, subject, "quarantine output %s (%d rows) does not exist", q.Object, q.Rows)
		case f.bad != nil:
		case int64(len(f.rows)) != q.Rows:
			a.violate(InvariantSourceRows, subject, "quarantine output %s: lineage says %d rows, the file has %d", q.Object, q.Rows, len(f.rows))
		}
	}

	if ing.raw == nil {
		return // nothing left to count lines in
	}
	a.checkLines(subject, ing.raw.lines, l)
}

// Line states, one bit per place a line can be.
const (
	inCurated uint8 = 1 << iota
	inQuarantine
	inSuperseded
)

// checkLines proves every data line 2..n+1 is in exactly one place, once.
func (a *auditor) checkLines(subject string, n int64, l *sourceLines) {
	state := make([]uint8, n+2)
	var outside, twice, both, missing []int64
	mark := func(lines []int64, bit uint8) {
		for _, ln := range lines {
			if ln < 2 || ln > n+1 {
				outside = append(outside, ln)
				continue
			}
			if state[ln]&bit != 0 {
				twice = append(twice, ln)
			}
			state[ln] |= bit
		}
	}
	mark(l.curated, inCurated)
	mark(l.quarantined, inQuarantine)
	mark(l.superseded, inSuperseded)
	for ln := int64(2); ln <= n+1; ln++ {
		switch s := state[ln]; {
		case s == 0:
			missing = append(missing, ln)
		case s&(s-1) != 0:
			both = append(both, ln)
		}
	}
	if len(missing) > 0 {
		a.violate(InvariantSourceRows, subject, "%d lines in neither curated nor quarantine: %s", len(missing), lineList(missing))
	}
	if len(both) > 0 {
		a.violate(InvariantSourceRows, subject, "%d lines in more than one of curated, quarantine and superseded: %s", len(both), lineList(both))
	}
	if len(twice) > 0 {
		a.violate(InvariantSourceRows, subject, "%d lines listed twice in one place: %s", len(twice), lineList(twice))
	}
	if len(outside) > 0 {
		a.violate(InvariantSourceRows, subject, "%d rows name lines outside 2..%d: %s", len(outside), n+1, lineList(outside))
	}
}

// lineList shows the first few line numbers of a list.
func lineList(lines []int64) string {
	const show = 8
	lines = slices.Clone(lines)
	slices.Sort(lines)
	var b strings.Builder
	for i, ln := range lines[:min(len(lines), show)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(ln, 10))
	}
	if len(lines) > show {
		fmt.Fprintf(&b, " and %d more", len(lines)-show)
	}
	return b.String()
}

// readLineage reads every lineage document.
func (a *auditor) readLineage(ctx context.Context) ([]*ingestion, error) {
	it := a.c.Firestore.Collection(names.CollectionIngestions).Documents(ctx)
	defer it.Stop()
	var out []*ingestion
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", names.CollectionIngestions, err)
		}
		ing := &ingestion{id: snap.Ref.ID}
		if err := snap.DataTo(&ing.doc); err != nil {
			a.violate(InvariantSourceRows, names.CollectionIngestions+"/"+snap.Ref.ID, "lineage document unreadable: %v", err)
			continue
		}
		out = append(out, ing)
	}
}

// listRaw lists the raw bucket.
func (a *auditor) listRaw(ctx context.Context) ([]*rawFile, error) {
	bucket := names.RawBucket(a.prefix)
	q := &storage.Query{}
	if err := q.SetAttrSelection([]string{"Name", "Generation", "Metadata"}); err != nil {
		return nil, fmt.Errorf("list gs://%s: %w", bucket, err)
	}
	it := a.c.Storage.Bucket(bucket).Objects(ctx, q)
	var out []*rawFile
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list gs://%s: %w", bucket, err)
		}
		r := &rawFile{name: attrs.Name, listed: attrs.Generation, src: source{attrs.Name, attrs.Generation}}
		if g, ok := attrs.Metadata[names.MetaLifecycleSourceGeneration]; ok {
			n, err := strconv.ParseInt(g, 10, 64)
			if err != nil {
				a.violate(InvariantSourceRows, attrs.Name, "metadata %s=%q is not a generation", names.MetaLifecycleSourceGeneration, g)
			} else {
				r.src.generation = n
			}
		}
		if r.id, err = names.RawID(r.src.object, r.src.generation); err != nil {
			r.id = ""
			a.violate(InvariantSourceRows, attrs.Name, "raw object process cannot take: %v", err)
		}
		out = append(out, r)
	}
}

// countLines counts the data lines of a raw object: its physical lines,
// a last line without "\n" included, less the header.
func (a *auditor) countLines(ctx context.Context, r *rawFile) error {
	bucket := names.RawBucket(a.prefix)
	rd, err := a.c.Storage.Bucket(bucket).Object(r.name).Generation(r.listed).NewReader(ctx)
	if err != nil {
		return fmt.Errorf("open gs://%s/%s#%d: %w", bucket, r.name, r.listed, err)
	}
	defer rd.Close()
	n, err := physicalLines(rd)
	if err != nil {
		return fmt.Errorf("read gs://%s/%s#%d: %w", bucket, r.name, r.listed, err)
	}
	r.lines = max(n-1, 0)
	return nil
}

// physicalLines counts the lines of r as process's tokenizer numbers them:
// one per "\n", plus a last line without one.
func physicalLines(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	open := false // the last line read has no "\n" yet
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			open = buf[k-1] != '\n'
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if open {
		n++
	}
	return n, nil
}

// listCurated lists the curated Parquet files.
func (a *auditor) listCurated(ctx context.Context) ([]*curatedFile, error) {
	objs, err := a.list(ctx, names.CuratedBucket(a.prefix), "results/")
	if err != nil {
		return nil, err
	}
	var out []*curatedFile
	for _, name := range objs {
		day, ok := curatedDay(name)
		if !ok {
			a.violate(InvariantSourceRows, name, "curated object outside results/date=YYYY-MM-DD/robot=Rnnn/<raw-id>.parquet")
			continue
		}
		out = append(out, &curatedFile{name: name, day: day})
	}
	return out, nil
}

// curatedDay returns the day of a curated object name.
func curatedDay(name string) (civil.Date, bool) {
	rest, ok := strings.CutPrefix(name, "results/date=")
	if !ok || !strings.HasSuffix(name, ".parquet") {
		return civil.Date{}, false
	}
	day, _, ok := strings.Cut(rest, "/")
	if !ok {
		return civil.Date{}, false
	}
	d, err := civil.ParseDate(day)
	return d, err == nil
}

// listQuarantine lists the quarantine files.
func (a *auditor) listQuarantine(ctx context.Context) ([]*quarantineFile, error) {
	objs, err := a.list(ctx, names.QuarantineBucket(a.prefix), "rows/")
	if err != nil {
		return nil, err
	}
	out := make([]*quarantineFile, len(objs))
	for i, name := range objs {
		out[i] = &quarantineFile{name: name}
	}
	return out, nil
}

// list returns the names of the live objects under prefix.
func (a *auditor) list(ctx context.Context, bucket, prefix string) ([]string, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, fmt.Errorf("list gs://%s/%s: %w", bucket, prefix, err)
	}
	it := a.c.Storage.Bucket(bucket).Objects(ctx, q)
	var out []string
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list gs://%s/%s: %w", bucket, prefix, err)
		}
		out = append(out, attrs.Name)
	}
}

// download reads a whole object.
func (a *auditor) download(ctx context.Context, bucket, name string) ([]byte, error) {
	rd, err := a.c.Storage.Bucket(bucket).Object(name).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("open gs://%s/%s: %w", bucket, name, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read gs://%s/%s: %w", bucket, name, err)
	}
	return data, nil
}

func (a *auditor) readCurated(ctx context.Context, f *curatedFile) error {
	data, err := a.download(ctx, names.CuratedBucket(a.prefix), f.name)
	if err != nil {
		return err
	}
	f.rows, f.bad = parseCurated(ctx, data)
	return nil
}

func (a *auditor) readQuarantine(ctx context.Context, q *quarantineFile) error {
	data, err := a.download(ctx, names.QuarantineBucket(a.prefix), q.name)
	if err != nil {
		return err
	}
	q.rows, q.bad = parseQuarantine(data)
	return nil
}
