package names

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"cloud.google.com/go/civil"
)

// ChunkObject is the parsed name of one chunk of an append-only robot
// database in the raw bucket:
//
//	robot=<robot>/date=<YYYY-MM-DD>/db/<file>.<series>.<start>-<end>.csv
//
// File is the database's file name on the share (results.db.csv). Series
// names one identity (generation) of that file: a rotation or truncation
// starts a new series. Start and End are byte offsets into that generation
// of the file, End exclusive, both at line boundaries; the chunk body is the
// file's header line followed by the bytes [Start, End). Date is the UTC day
// the chunk was first attempted, as for raw objects.
type ChunkObject struct {
	Robot  string
	Date   civil.Date
	File   string
	Series string
	Start  int64
	End    int64
}

// seriesRE: letters, digits and hyphens, so the dots of the name stay
// unambiguous.
var seriesRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// Name returns the object name, validating its parts.
func (c ChunkObject) Name() (string, error) {
	name := fmt.Sprintf("robot=%s/date=%s/db/%s.%s.%d-%d.csv", c.Robot, c.Date, c.File, c.Series, c.Start, c.End)
	if err := c.validate(name); err != nil {
		return "", err
	}
	return name, nil
}

func (c ChunkObject) validate(name string) error {
	switch {
	case !ValidRobot(c.Robot):
		return &ObjectNameError{Name: name, Reason: fmt.Sprintf("robot %q is not R followed by three digits", c.Robot)}
	case !c.Date.IsValid():
		return &ObjectNameError{Name: name, Reason: "invalid date"}
	case c.File == "" || c.File == "." || c.File == "..":
		return &ObjectNameError{Name: name, Reason: "empty file name"}
	case strings.ContainsAny(c.File, "/\x00\r\n"):
		return &ObjectNameError{Name: name, Reason: "file name has '/' or control characters"}
	case !seriesRE.MatchString(c.Series):
		return &ObjectNameError{Name: name, Reason: fmt.Sprintf("series %q: want 1-64 letters, digits or hyphens", c.Series)}
	case c.Start < 0 || c.End <= c.Start:
		return &ObjectNameError{Name: name, Reason: fmt.Sprintf("byte range %d-%d: want 0 <= start < end", c.Start, c.End)}
	}
	return nil
}

// IsChunkObject reports whether a raw bucket object name is in the chunk
// layout (has a db/ segment after the date), without validating it.
func IsChunkObject(name string) bool {
	_, rest, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(rest, "/")
	return ok && strings.HasPrefix(rest, "db/")
}

// ParseChunkObject parses a chunk object name. The file name may contain
// dots; the series, start and end are the last three dot-separated parts
// before ".csv".
func ParseChunkObject(name string) (ChunkObject, error) {
	bad := &ObjectNameError{Name: name, Reason: "want robot=<id>/date=<YYYY-MM-DD>/db/<file>.<series>.<start>-<end>.csv"}
	raw, err := ParseRawObject(name)
	if err != nil {
		return ChunkObject{}, bad
	}
	rest, ok := strings.CutPrefix(raw.File, "db/")
	if !ok {
		return ChunkObject{}, bad
	}
	rest, ok = strings.CutSuffix(rest, ".csv")
	if !ok {
		return ChunkObject{}, bad
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return ChunkObject{}, bad
	}
	span := rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return ChunkObject{}, bad
	}
	c := ChunkObject{Robot: raw.Robot, Date: raw.Date, File: rest[:j], Series: rest[j+1:]}
	startS, endS, ok := strings.Cut(span, "-")
	if !ok {
		return ChunkObject{}, bad
	}
	if c.Start, err = parseOffset(startS); err != nil {
		return ChunkObject{}, bad
	}
	if c.End, err = parseOffset(endS); err != nil {
		return ChunkObject{}, bad
	}
	if err := c.validate(name); err != nil {
		return ChunkObject{}, err
	}
	// Only the canonical spelling parses: the name round-trips.
	if canon, _ := c.Name(); canon != name {
		return ChunkObject{}, &ObjectNameError{Name: name, Reason: "not in canonical form (leading zeros or signs in offsets)"}
	}
	return c, nil
}

func parseOffset(s string) (int64, error) {
	if s == "" || strings.ContainsAny(s, "+-") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}
