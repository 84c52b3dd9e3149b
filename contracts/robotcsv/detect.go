package robotcsv

import (
	"fmt"
	"slices"
	"strings"
)

// Layout is a detected header: the version, and where each field's column is.
type Layout struct {
	Version Version
	// Width is the number of columns in the header; a row with another count
	// is malformed.
	Width int
	pos   [numFields]int
}

// Pos returns the 0-based column of field f, or -1 when the file has none.
func (l *Layout) Pos(f Field) int {
	if f < 0 || f >= numFields {
		return -1
	}
	return l.pos[f]
}

// UnknownHeaderError says why a header line matches no version.
type UnknownHeaderError struct {
	// Header is the header line as read, cut to 200 bytes.
	Header string
	// Nearest is the version that needs the fewest changes to match, and
	// Missing and Unexpected are those changes.
	Nearest    string
	Missing    []string
	Unexpected []string
	Duplicated []string
}

func (e *UnknownHeaderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown robot CSV header %q: nearest version %s", e.Header, e.Nearest)
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, ", missing %s", strings.Join(e.Missing, ", "))
	}
	if len(e.Unexpected) > 0 {
		fmt.Fprintf(&b, ", unexpected %s", strings.Join(e.Unexpected, ", "))
	}
	if len(e.Duplicated) > 0 {
		fmt.Fprintf(&b, ", duplicated %s", strings.Join(e.Duplicated, ", "))
	}
	return b.String()
}

const maxHeaderInError = 200

// Detect recognises the version of a robot export from its header line. A
// UTF-8 byte order mark and a trailing CR/LF are ignored, and so are spaces
// and double quotes around column names. When no version matches, the error
// is an *UnknownHeaderError.
func Detect(header string) (*Layout, error) {
	header = strings.TrimPrefix(header, "\uFEFF")
	header = strings.TrimRight(header, "\r\n")
	var best *UnknownHeaderError
	var bestRank [4]int
	for _, v := range Versions() {
		l, miss := match(v, header)
		if miss == nil {
			return l, nil
		}
		// Nearest: most columns recognised, then the delimiter that splits
		// the line most, then the closest column count, then fewest changes.
		width := strings.Count(header, string(v.Delimiter)) + 1
		rank := [4]int{
			-(len(v.Columns) - len(miss.Missing)),
			-width,
			abs(width - len(v.Columns)),
			len(miss.Missing) + len(miss.Unexpected) + len(miss.Duplicated),
		}
		if best == nil || less(rank, bestRank) {
			best, bestRank = miss, rank
		}
	}
	if len(header) > maxHeaderInError {
		header = header[:maxHeaderInError]
	}
	best.Header = header
	return nil, best
}

func less(a, b [4]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func match(v Version, header string) (*Layout, *UnknownHeaderError) {
	names := strings.Split(header, string(v.Delimiter))
	l := &Layout{Version: v, Width: len(names)}
	for i := range l.pos {
		l.pos[i] = -1
	}
	want := make(map[string]Field, len(v.Columns))
	for _, c := range v.Columns {
		want[c.Name] = c.Field
	}
	miss := &UnknownHeaderError{Nearest: v.Name}
	seen := make(map[string]bool, len(names))
	for i, raw := range names {
		name := strings.Trim(strings.TrimSpace(raw), `"`)
		if seen[name] {
			miss.Duplicated = append(miss.Duplicated, name)
			continue
		}
		seen[name] = true
		f, ok := want[name]
		if !ok {
			if !v.AllowExtraColumns {
				miss.Unexpected = append(miss.Unexpected, name)
			}
			continue
		}
		l.pos[f] = i
	}
	for _, c := range v.Columns {
		if !seen[c.Name] {
			miss.Missing = append(miss.Missing, c.Name)
		}
	}
	if len(miss.Missing) == 0 && len(miss.Unexpected) == 0 && len(miss.Duplicated) == 0 {
		return l, nil
	}
	slices.Sort(miss.Missing)
	return nil, miss
}
