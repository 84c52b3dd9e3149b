package clean

import (
	"strconv"
	"strings"
	"time"

	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// catalogue is labtests indexed for the hot loop: tests sorted by LOINC code,
// so a test's index orders like its code.
type catalogue struct {
	tests      []labtests.Test
	byCode     map[string]int
	byMnemonic map[string]int
	// units caches, per test, the conversions of the units as written: a
	// file uses one or two spellings per test, so a scan beats hashing.
	units [][]unitEntry
}

type unitEntry struct {
	unit string
	cv   conversion
}

type conversion struct {
	ok             bool
	factor, offset float64
}

func newCatalogue() *catalogue {
	c := &catalogue{
		tests:      labtests.All(),
		byCode:     map[string]int{},
		byMnemonic: map[string]int{},
	}
	c.units = make([][]unitEntry, len(c.tests))
	for i, t := range c.tests {
		c.byCode[t.Code] = i
		c.byMnemonic[strings.ToUpper(t.Mnemonic)] = i
	}
	return c
}

// lookup resolves a test as the version codes it; -1 when unknown.
func (c *catalogue) lookup(coding robotcsv.TestCoding, s string) int {
	s = strings.TrimSpace(s)
	if coding == robotcsv.Mnemonic {
		if i, ok := c.byMnemonic[s]; ok {
			return i
		}
		if i, ok := c.byMnemonic[strings.ToUpper(s)]; ok {
			return i
		}
		return -1
	}
	if i, ok := c.byCode[s]; ok {
		return i
	}
	return -1
}

// convert returns the conversion of unit to test's canonical unit.
func (c *catalogue) convert(test int, unit string) conversion {
	for _, e := range c.units[test] {
		if e.unit == unit {
			return e.cv
		}
	}
	t := c.tests[test]
	n := labtests.NormalizeUnit(unit)
	cv := conversion{}
	if n == t.Unit {
		cv = conversion{ok: true, factor: 1}
	} else {
		for _, a := range t.Alternates {
			if a.Unit == n {
				cv = conversion{ok: true, factor: a.Factor, offset: a.Offset}
				break
			}
		}
	}
	if len(c.units[test]) < 8 { // a file full of distinct junk units must not grow the cache
		c.units[test] = append(c.units[test], unitEntry{unit: strings.Clone(unit), cv: cv})
	}
	return cv
}

// validID reports whether s is a well-formed patient or sample identifier:
// 3 to 64 ASCII letters, digits, '-' or '_', starting with a letter or digit.
func validID(s string) bool {
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// parseNumber reads a decimal number written with sep as the decimal
// separator. scratch is reused for the comma-to-point rewrite.
func parseNumber(s string, sep byte, scratch *[]byte) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if sep != '.' {
		if strings.IndexByte(s, '.') >= 0 {
			return 0, false // a point is not a decimal separator in this version
		}
		b := append((*scratch)[:0], s...)
		for i := range b {
			if b[i] == sep {
				b[i] = '.'
			}
		}
		*scratch = b
		s = unsafeString(b)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e300 || f < -1e300 { // NaN and infinities are not results
		return 0, false
	}
	return f, true
}

// timeParser parses one version's timestamps, remembering the last one: rows
// of one sample share their collection time, so most lookups hit.
type timeParser struct {
	v       robotcsv.Version
	lastIn  string
	lastOut int64
	lastOK  bool
}

// parse returns the timestamp as Unix microseconds (UTC).
func (p *timeParser) parse(s string) (int64, bool) {
	if s == p.lastIn && s != "" {
		return p.lastOut, p.lastOK
	}
	us, ok := p.parseSlow(s)
	p.lastIn, p.lastOut, p.lastOK = strings.Clone(s), us, ok
	return us, ok
}

func (p *timeParser) parseSlow(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if p.v.TimestampLayout == time.RFC3339Nano {
		if us, ok := fastRFC3339(s); ok {
			return us, true
		}
	}
	t, err := p.v.ParseTime(s)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// fastRFC3339 parses the common shapes YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)
// without allocating; anything else falls back to the time package.
func fastRFC3339(s string) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var frac int64
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		f, _ := digits(rest[1:n])
		for range 10 - n { // scale to nanoseconds
			f *= 10
		}
		frac = int64(f) / 1000
		rest = rest[n:]
	}
	var offset int64
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	return secs*1_000_000 + frac, true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to the proleptic Gregorian date
// (Howard Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// statusRank orders result statuses for deduplication; 0 is not a status.
func statusRank(s string) uint8 {
	switch s {
	case robotcsv.StatusPreliminary:
		return 1
	case robotcsv.StatusFinal:
		return 2
	case robotcsv.StatusCorrected:
		return 3
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case robotcsv.StatusPreliminary:
		return 1
	case robotcsv.StatusFinal:
		return 2
	case robotcsv.StatusCorrected:
		return 3
	}
	return 0
}

var statusNames = [...]string{"", robotcsv.StatusPreliminary, robotcsv.StatusFinal, robotcsv.StatusCorrected}

var flagNames = [...]labtests.Flag{labtests.FlagCriticalLow, labtests.FlagLow, labtests.FlagNormal, labtests.FlagHigh, labtests.FlagCriticalHigh}

func flagIndex(f labtests.Flag) uint8 {
	for i, n := range flagNames {
		if n == f {
			return uint8(i)
		}
	}
	return 2
}
