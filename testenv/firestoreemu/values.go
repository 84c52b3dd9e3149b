package firestoreemu

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
)

// Type ranks of Firestore's cross-type value ordering (the same order as the
// client's order.go and the backend): null < boolean < number < timestamp <
// string < bytes < reference < geo point < array < vector < map.
const (
	rankNull = iota
	rankBool
	rankNumber
	rankTimestamp
	rankString
	rankBytes
	rankRef
	rankGeo
	rankArray
	rankVector
	rankMap
)

func typeRank(v *pb.Value) int {
	switch x := v.GetValueType().(type) {
	case *pb.Value_NullValue, nil:
		return rankNull
	case *pb.Value_BooleanValue:
		return rankBool
	case *pb.Value_IntegerValue, *pb.Value_DoubleValue:
		return rankNumber
	case *pb.Value_TimestampValue:
		return rankTimestamp
	case *pb.Value_StringValue:
		return rankString
	case *pb.Value_BytesValue:
		return rankBytes
	case *pb.Value_ReferenceValue:
		return rankRef
	case *pb.Value_GeoPointValue:
		return rankGeo
	case *pb.Value_ArrayValue:
		return rankArray
	case *pb.Value_MapValue:
		if t, ok := x.MapValue.GetFields()["__type__"]; ok && t.GetStringValue() == "__vector__" {
			return rankVector
		}
		return rankMap
	default:
		return rankMap
	}
}

// compareValues orders a and b by Firestore's rules; 0 means equal (which is
// also Firestore's equality for queries: 1 == 1.0, NaN == NaN).
func compareValues(a, b *pb.Value) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return cmpInt(int64(ra), int64(rb))
	}
	switch ra {
	case rankNull:
		return 0
	case rankBool:
		x, y := a.GetBooleanValue(), b.GetBooleanValue()
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		default:
			return 1
		}
	case rankNumber:
		return compareNumbers(a, b)
	case rankTimestamp:
		ta, tb := a.GetTimestampValue(), b.GetTimestampValue()
		if c := cmpInt(ta.GetSeconds(), tb.GetSeconds()); c != 0 {
			return c
		}
		return cmpInt(int64(ta.GetNanos()), int64(tb.GetNanos()))
	case rankString:
		return strings.Compare(a.GetStringValue(), b.GetStringValue())
	case rankBytes:
		return bytes.Compare(a.GetBytesValue(), b.GetBytesValue())
	case rankRef:
		return compareRefs(a.GetReferenceValue(), b.GetReferenceValue())
	case rankGeo:
		ga, gb := a.GetGeoPointValue(), b.GetGeoPointValue()
		if c := cmpFloat(ga.GetLatitude(), gb.GetLatitude()); c != 0 {
			return c
		}
		return cmpFloat(ga.GetLongitude(), gb.GetLongitude())
	case rankArray:
		return compareArrays(a.GetArrayValue().GetValues(), b.GetArrayValue().GetValues())
	case rankVector:
		// Vectors order by length first, then element-wise.
		va := a.GetMapValue().GetFields()["value"].GetArrayValue().GetValues()
		vb := b.GetMapValue().GetFields()["value"].GetArrayValue().GetValues()
		if c := cmpInt(int64(len(va)), int64(len(vb))); c != 0 {
			return c
		}
		return compareArrays(va, vb)
	default:
		return compareMaps(a.GetMapValue().GetFields(), b.GetMapValue().GetFields())
	}
}

func valuesEqual(a, b *pb.Value) bool { return compareValues(a, b) == 0 }

func compareArrays(a, b []*pb.Value) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmpInt(int64(len(a)), int64(len(b)))
}

func compareMaps(a, b map[string]*pb.Value) int {
	ka, kb := sortedKeys(a), sortedKeys(b)
	for i := 0; i < len(ka) && i < len(kb); i++ {
		if c := strings.Compare(ka[i], kb[i]); c != 0 {
			return c
		}
		if c := compareValues(a[ka[i]], b[kb[i]]); c != 0 {
			return c
		}
	}
	return cmpInt(int64(len(ka)), int64(len(kb)))
}

func sortedKeys(m map[string]*pb.Value) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// compareRefs compares document names segment by segment.
func compareRefs(a, b string) int {
	for {
		ia, ib := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		sa, sb := a, b
		if ia >= 0 {
			sa = a[:ia]
		}
		if ib >= 0 {
			sb = b[:ib]
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		switch {
		case ia < 0 && ib < 0:
			return 0
		case ia < 0:
			return -1
		case ib < 0:
			return 1
		}
		a, b = a[ia+1:], b[ib+1:]
	}
}

// compareNumbers compares integers exactly, doubles with NaN first, and mixed
// pairs without losing precision for large integers.
func compareNumbers(a, b *pb.Value) int {
	ai, aIsInt := a.GetValueType().(*pb.Value_IntegerValue)
	bi, bIsInt := b.GetValueType().(*pb.Value_IntegerValue)
	switch {
	case aIsInt && bIsInt:
		return cmpInt(ai.IntegerValue, bi.IntegerValue)
	case aIsInt:
		return -compareDoubleInt(b.GetDoubleValue(), ai.IntegerValue)
	case bIsInt:
		return compareDoubleInt(a.GetDoubleValue(), bi.IntegerValue)
	default:
		return cmpFloat(a.GetDoubleValue(), b.GetDoubleValue())
	}
}

func compareDoubleInt(d float64, i int64) int {
	if math.IsNaN(d) {
		return -1
	}
	if c := cmpFloat(d, float64(i)); c != 0 {
		return c
	}
	// d equals float64(i): d is integral; decide exactly.
	if d >= math.MaxInt64 { // 2^63 and above
		return 1
	}
	if d < math.MinInt64 {
		return -1
	}
	return cmpInt(int64(d), i)
}

// cmpFloat orders NaN before every other number and treats NaN == NaN.
func cmpFloat(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

func isNaNValue(v *pb.Value) bool {
	d, ok := v.GetValueType().(*pb.Value_DoubleValue)
	return ok && math.IsNaN(d.DoubleValue)
}

func isNullValue(v *pb.Value) bool {
	_, ok := v.GetValueType().(*pb.Value_NullValue)
	return ok
}

// parseFieldPath splits a field path in Firestore's string syntax: segments
// separated by dots, each either a simple identifier or backtick-quoted with
// backslash escapes (e.g. a.`2345-7`.b).
func parseFieldPath(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("empty field path")
	}
	var segs []string
	for i := 0; i < len(s); {
		var seg strings.Builder
		if s[i] == '`' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				switch {
				case c == '\\' && i+1 < len(s):
					seg.WriteByte(s[i+1])
					i += 2
					continue
				case c == '`':
					closed = true
					i++
				default:
					seg.WriteByte(c)
					i++
					continue
				}
				break
			}
			if !closed {
				return nil, fmt.Errorf("field path %q: unterminated backtick", s)
			}
			if seg.Len() == 0 {
				return nil, fmt.Errorf("field path %q: empty quoted segment", s)
			}
		} else {
			start := i
			for i < len(s) && s[i] != '.' {
				c := s[i]
				if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > start && c >= '0' && c <= '9')) {
					return nil, fmt.Errorf("field path %q: segment must be quoted with backticks", s)
				}
				i++
			}
			if i == start {
				return nil, fmt.Errorf("field path %q: empty segment", s)
			}
			seg.WriteString(s[start:i])
		}
		segs = append(segs, seg.String())
		if i < len(s) {
			if s[i] != '.' {
				return nil, fmt.Errorf("field path %q: expected '.' at offset %d", s, i)
			}
			i++
			if i == len(s) {
				return nil, fmt.Errorf("field path %q: trailing '.'", s)
			}
		}
	}
	return segs, nil
}

// getField returns the value at path in fields, or nil when absent.
func getField(fields map[string]*pb.Value, path []string) *pb.Value {
	for i, seg := range path {
		v, ok := fields[seg]
		if !ok {
			return nil
		}
		if i == len(path)-1 {
			return v
		}
		m, ok := v.GetValueType().(*pb.Value_MapValue)
		if !ok {
			return nil
		}
		fields = m.MapValue.GetFields()
	}
	return nil
}

// setField stores v at path, copying the maps along the path so values shared
// with stored documents are never mutated. fields itself must be owned.
func setField(fields map[string]*pb.Value, path []string, v *pb.Value) {
	if len(path) == 1 {
		fields[path[0]] = v
		return
	}
	var child map[string]*pb.Value
	if m, ok := fields[path[0]].GetValueType().(*pb.Value_MapValue); ok {
		child = make(map[string]*pb.Value, len(m.MapValue.GetFields())+1)
		for k, x := range m.MapValue.GetFields() {
			child[k] = x
		}
	} else {
		child = make(map[string]*pb.Value, 1)
	}
	setField(child, path[1:], v)
	fields[path[0]] = &pb.Value{ValueType: &pb.Value_MapValue{MapValue: &pb.MapValue{Fields: child}}}
}

// deleteField removes path from fields (copy-on-write like setField).
func deleteField(fields map[string]*pb.Value, path []string) {
	if len(path) == 1 {
		delete(fields, path[0])
		return
	}
	m, ok := fields[path[0]].GetValueType().(*pb.Value_MapValue)
	if !ok {
		return
	}
	if _, ok := m.MapValue.GetFields()[path[1]]; !ok && len(path) == 2 {
		return
	}
	child := make(map[string]*pb.Value, len(m.MapValue.GetFields()))
	for k, x := range m.MapValue.GetFields() {
		child[k] = x
	}
	deleteField(child, path[1:])
	fields[path[0]] = &pb.Value{ValueType: &pb.Value_MapValue{MapValue: &pb.MapValue{Fields: child}}}
}

// project keeps only the given field paths of fields.
func project(fields map[string]*pb.Value, paths [][]string) map[string]*pb.Value {
	out := make(map[string]*pb.Value)
	for _, p := range paths {
		if v := getField(fields, p); v != nil {
			setField(out, p, v)
		}
	}
	return out
}

// Size accounting follows Firestore's storage size rules
// (https://firebase.google.com/docs/firestore/storage-size).
func stringSize(s string) int { return len(s) + 1 }

func valueSize(v *pb.Value) int {
	switch x := v.GetValueType().(type) {
	case *pb.Value_NullValue, *pb.Value_BooleanValue:
		return 1
	case *pb.Value_IntegerValue, *pb.Value_DoubleValue, *pb.Value_TimestampValue:
		return 8
	case *pb.Value_StringValue:
		return stringSize(x.StringValue)
	case *pb.Value_BytesValue:
		return len(x.BytesValue)
	case *pb.Value_ReferenceValue:
		return nameSize(x.ReferenceValue)
	case *pb.Value_GeoPointValue:
		return 16
	case *pb.Value_ArrayValue:
		n := 0
		for _, e := range x.ArrayValue.GetValues() {
			n += valueSize(e)
		}
		return n
	case *pb.Value_MapValue:
		return fieldsSize(x.MapValue.GetFields())
	default:
		return 1
	}
}

func fieldsSize(fields map[string]*pb.Value) int {
	n := 0
	for k, v := range fields {
		n += stringSize(k) + valueSize(v)
	}
	return n
}

// nameSize is the size of a document name: its path segments after
// /documents/ plus 16 bytes.
func nameSize(name string) int {
	_, rel, ok := strings.Cut(name, "/documents/")
	if !ok {
		return len(name) + 16
	}
	n := 16
	for _, seg := range strings.Split(rel, "/") {
		n += stringSize(seg)
	}
	return n
}

// countFields counts every field, including each subfield of a map.
func countFields(fields map[string]*pb.Value) int {
	n := 0
	for _, v := range fields {
		n++
		n += countNested(v)
	}
	return n
}

func countNested(v *pb.Value) int {
	switch x := v.GetValueType().(type) {
	case *pb.Value_MapValue:
		return countFields(x.MapValue.GetFields())
	case *pb.Value_ArrayValue:
		n := 0
		for _, e := range x.ArrayValue.GetValues() {
			n += countNested(e)
		}
		return n
	}
	return 0
}

// validateFields checks field names and values of a document being written.
func validateFields(fields map[string]*pb.Value, depth int) error {
	if depth > 20 {
		return fmt.Errorf("maps nested deeper than 20 levels")
	}
	for k, v := range fields {
		if k == "" && depth == 0 {
			return fmt.Errorf("field names must not be empty")
		}
		if len(k) > 1500 {
			return fmt.Errorf("field name longer than 1500 bytes")
		}
		if !utf8.ValidString(k) {
			return fmt.Errorf("field name %q is not valid UTF-8", k)
		}
		if depth == 0 && strings.HasPrefix(k, "__") && strings.HasSuffix(k, "__") && len(k) >= 4 {
			return fmt.Errorf("field name %q is reserved", k)
		}
		if err := validateValue(v, depth); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

func validateValue(v *pb.Value, depth int) error {
	switch x := v.GetValueType().(type) {
	case nil:
		return fmt.Errorf("value has no type")
	case *pb.Value_MapValue:
		return validateFields(x.MapValue.GetFields(), depth+1)
	case *pb.Value_ArrayValue:
		for _, e := range x.ArrayValue.GetValues() {
			if _, nested := e.GetValueType().(*pb.Value_ArrayValue); nested {
				return fmt.Errorf("arrays cannot directly contain arrays")
			}
			if err := validateValue(e, depth+1); err != nil {
				return err
			}
		}
	case *pb.Value_StringValue:
		if !utf8.ValidString(x.StringValue) {
			return fmt.Errorf("string value is not valid UTF-8")
		}
	case *pb.Value_ReferenceValue:
		if _, err := parseDocName(x.ReferenceValue); err != nil {
			return fmt.Errorf("reference value: %w", err)
		}
	case *pb.Value_TimestampValue:
		if err := x.TimestampValue.CheckValid(); err != nil {
			return fmt.Errorf("timestamp value: %w", err)
		}
		if x.TimestampValue.GetNanos()%1000 != 0 {
			// Firestore truncates to microseconds; store as it does.
			x.TimestampValue.Nanos -= x.TimestampValue.GetNanos() % 1000
		}
	}
	return nil
}

func intValue(i int64) *pb.Value {
	return &pb.Value{ValueType: &pb.Value_IntegerValue{IntegerValue: i}}
}
func doubleValue(d float64) *pb.Value {
	return &pb.Value{ValueType: &pb.Value_DoubleValue{DoubleValue: d}}
}
func nullValue() *pb.Value { return &pb.Value{ValueType: &pb.Value_NullValue{}} }
func refValue(name string) *pb.Value {
	return &pb.Value{ValueType: &pb.Value_ReferenceValue{ReferenceValue: name}}
}
