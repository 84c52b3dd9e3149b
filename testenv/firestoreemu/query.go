package firestoreemu

import (
	"fmt"
	"slices"
	"strings"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const namePath = "__name__"

// Firestore's limits on filter operands.
const (
	maxInValues      = 30
	maxNotInValues   = 10
	maxDisjunctions  = 30
	maxCompositeSize = 100
)

// orderSpec is one resolved ordering.
type orderSpec struct {
	path []string // nil for __name__
	desc bool
}

// plannedQuery is a validated structured query.
type plannedQuery struct {
	parent     string
	collection string
	allDesc    bool
	filter     *pb.StructuredQuery_Filter
	orders     []orderSpec
	start, end *pb.Cursor
	offset     int
	limit      int // -1: none
	projection [][]string
	nameOnly   bool
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// planQuery validates q and resolves its implicit orderings: inequality
// fields not already ordered (lexicographically), then __name__ in the
// direction of the last explicit ordering.
func planQuery(parent string, q *pb.StructuredQuery) (*plannedQuery, error) {
	if _, _, err := parseParent(parent); err != nil {
		return nil, invalid("%v", err)
	}
	p := &plannedQuery{parent: parent, filter: q.GetWhere(), limit: -1, start: q.GetStartAt(), end: q.GetEndAt()}
	if len(q.GetFrom()) != 1 {
		return nil, invalid("a query must have exactly one collection selector, got %d", len(q.GetFrom()))
	}
	p.collection = q.GetFrom()[0].GetCollectionId()
	p.allDesc = q.GetFrom()[0].GetAllDescendants()
	if p.collection == "" && !p.allDesc {
		return nil, invalid("collection_id is required unless all_descendants is set")
	}
	if p.collection != "" {
		if err := validateID(p.collection); err != nil {
			return nil, invalid("invalid collection id: %v", err)
		}
	}
	if q.GetOffset() < 0 {
		return nil, invalid("offset must not be negative")
	}
	p.offset = int(q.GetOffset())
	if q.GetLimit() != nil {
		if q.GetLimit().GetValue() < 0 {
			return nil, invalid("limit must not be negative")
		}
		p.limit = int(q.GetLimit().GetValue())
	}
	ineq := map[string][]string{}
	disj := 0
	if p.filter != nil {
		n, err := validateFilter(p.filter, ineq, 0)
		if err != nil {
			return nil, err
		}
		disj = n
	}
	if disj > maxDisjunctions {
		return nil, invalid("the query has %d disjunctions; the maximum is %d", disj, maxDisjunctions)
	}
	seen := map[string]bool{}
	lastDesc := false
	for _, o := range q.GetOrderBy() {
		fp := o.GetField().GetFieldPath()
		if seen[fp] {
			return nil, invalid("order by %q appears more than once", fp)
		}
		seen[fp] = true
		spec := orderSpec{desc: o.GetDirection() == pb.StructuredQuery_DESCENDING}
		if fp != namePath {
			path, err := parseFieldPath(fp)
			if err != nil {
				return nil, invalid("order by: %v", err)
			}
			spec.path = path
		}
		lastDesc = spec.desc
		p.orders = append(p.orders, spec)
	}
	var extra []string
	for fp := range ineq {
		if !seen[fp] && fp != namePath {
			extra = append(extra, fp)
		}
	}
	slices.Sort(extra)
	for _, fp := range extra {
		p.orders = append(p.orders, orderSpec{path: ineq[fp], desc: lastDesc})
	}
	if !seen[namePath] {
		p.orders = append(p.orders, orderSpec{desc: lastDesc})
	}
	for _, c := range []*pb.Cursor{p.start, p.end} {
		if c == nil {
			continue
		}
		if len(c.GetValues()) > len(p.orders) {
			return nil, invalid("a cursor has %d values but the query orders by %d fields", len(c.GetValues()), len(p.orders))
		}
		for i, v := range c.GetValues() {
			if p.orders[i].path == nil {
				if _, ok := v.GetValueType().(*pb.Value_ReferenceValue); !ok {
					return nil, invalid("a cursor value for __name__ must be a document reference")
				}
				if err := checkNameInScope(p, v.GetReferenceValue()); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, fp := range q.GetSelect().GetFields() {
		if fp.GetFieldPath() == namePath {
			p.nameOnly = true
			continue
		}
		path, err := parseFieldPath(fp.GetFieldPath())
		if err != nil {
			return nil, invalid("select: %v", err)
		}
		p.projection = append(p.projection, path)
	}
	if q.GetSelect() != nil && len(p.projection) > 0 {
		p.nameOnly = false
	}
	if q.GetSelect() != nil && len(q.GetSelect().GetFields()) == 0 {
		p.nameOnly = true
	}
	return p, nil
}

func checkNameInScope(p *plannedQuery, ref string) error {
	if _, err := parseDocName(ref); err != nil {
		return invalid("%v", err)
	}
	if !strings.HasPrefix(ref, p.parent+"/") {
		return invalid("reference %q is not within the query's parent %q", ref, p.parent)
	}
	return nil
}

// validateFilter checks f, collects inequality fields and returns the
// number of disjunctions in its disjunctive normal form.
func validateFilter(f *pb.StructuredQuery_Filter, ineq map[string][]string, depth int) (int, error) {
	if depth > 10 {
		return 0, invalid("filters nested too deeply")
	}
	switch x := f.GetFilterType().(type) {
	case *pb.StructuredQuery_Filter_CompositeFilter:
		cf := x.CompositeFilter
		if len(cf.GetFilters()) > maxCompositeSize {
			return 0, invalid("composite filter has too many filters")
		}
		switch cf.GetOp() {
		case pb.StructuredQuery_CompositeFilter_AND:
			n := 1
			for _, sub := range cf.GetFilters() {
				k, err := validateFilter(sub, ineq, depth+1)
				if err != nil {
					return 0, err
				}
				n *= k
				if n > 1<<20 {
					n = 1 << 20
				}
			}
			return n, nil
		case pb.StructuredQuery_CompositeFilter_OR:
			n := 0
			for _, sub := range cf.GetFilters() {
				k, err := validateFilter(sub, ineq, depth+1)
				if err != nil {
					return 0, err
				}
				n += k
			}
			if n == 0 {
				n = 1
			}
			return n, nil
		default:
			return 0, invalid("composite filter operator must be AND or OR")
		}
	case *pb.StructuredQuery_Filter_FieldFilter:
		ff := x.FieldFilter
		fp := ff.GetField().GetFieldPath()
		var path []string
		if fp != namePath {
			var err error
			if path, err = parseFieldPath(fp); err != nil {
				return 0, invalid("filter: %v", err)
			}
		}
		v := ff.GetValue()
		if v == nil || v.GetValueType() == nil {
			return 0, invalid("filter on %q has no value", fp)
		}
		n := 1
		switch ff.GetOp() {
		case pb.StructuredQuery_FieldFilter_LESS_THAN, pb.StructuredQuery_FieldFilter_LESS_THAN_OR_EQUAL,
			pb.StructuredQuery_FieldFilter_GREATER_THAN, pb.StructuredQuery_FieldFilter_GREATER_THAN_OR_EQUAL,
			pb.StructuredQuery_FieldFilter_NOT_EQUAL:
			ineq[fp] = path
		case pb.StructuredQuery_FieldFilter_EQUAL, pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS:
		case pb.StructuredQuery_FieldFilter_IN, pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS_ANY, pb.StructuredQuery_FieldFilter_NOT_IN:
			arr, ok := v.GetValueType().(*pb.Value_ArrayValue)
			if !ok || len(arr.ArrayValue.GetValues()) == 0 {
				return 0, invalid("a %v filter on %q requires a non-empty array value", ff.GetOp(), fp)
			}
			k := len(arr.ArrayValue.GetValues())
			if ff.GetOp() == pb.StructuredQuery_FieldFilter_NOT_IN {
				if k > maxNotInValues {
					return 0, invalid("'NOT_IN' supports up to %d comparison values", maxNotInValues)
				}
				ineq[fp] = path
			} else {
				if k > maxInValues {
					return 0, invalid("'%v' supports up to %d comparison values", ff.GetOp(), maxInValues)
				}
				n = k
			}
		default:
			return 0, invalid("unsupported field filter operator %v", ff.GetOp())
		}
		if fp == namePath {
			if err := checkRefOperand(ff.GetOp(), v); err != nil {
				return 0, err
			}
		}
		return n, nil
	case *pb.StructuredQuery_Filter_UnaryFilter:
		uf := x.UnaryFilter
		fp := uf.GetField().GetFieldPath()
		path, err := parseFieldPath(fp)
		if err != nil {
			return 0, invalid("filter: %v", err)
		}
		switch uf.GetOp() {
		case pb.StructuredQuery_UnaryFilter_IS_NULL, pb.StructuredQuery_UnaryFilter_IS_NAN:
		case pb.StructuredQuery_UnaryFilter_IS_NOT_NULL, pb.StructuredQuery_UnaryFilter_IS_NOT_NAN:
			ineq[fp] = path
		default:
			return 0, invalid("unsupported unary filter operator %v", uf.GetOp())
		}
		return 1, nil
	default:
		return 0, invalid("filter has no type")
	}
}

func checkRefOperand(op pb.StructuredQuery_FieldFilter_Operator, v *pb.Value) error {
	vals := []*pb.Value{v}
	if op == pb.StructuredQuery_FieldFilter_IN || op == pb.StructuredQuery_FieldFilter_NOT_IN {
		vals = v.GetArrayValue().GetValues()
	}
	if op == pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS || op == pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS_ANY {
		return invalid("__name__ does not support %v", op)
	}
	for _, x := range vals {
		if _, ok := x.GetValueType().(*pb.Value_ReferenceValue); !ok {
			return invalid("__name__ filters need document references, got %T", x.GetValueType())
		}
	}
	return nil
}

// fieldOf returns a document's value for a path; a nil path is __name__.
func fieldOf(d *pb.Document, path []string) *pb.Value {
	if path == nil {
		return refValue(d.GetName())
	}
	return getField(d.GetFields(), path)
}

func matches(d *pb.Document, f *pb.StructuredQuery_Filter) bool {
	switch x := f.GetFilterType().(type) {
	case *pb.StructuredQuery_Filter_CompositeFilter:
		if x.CompositeFilter.GetOp() == pb.StructuredQuery_CompositeFilter_OR {
			for _, sub := range x.CompositeFilter.GetFilters() {
				if matches(d, sub) {
					return true
				}
			}
			return len(x.CompositeFilter.GetFilters()) == 0
		}
		for _, sub := range x.CompositeFilter.GetFilters() {
			if !matches(d, sub) {
				return false
			}
		}
		return true
	case *pb.StructuredQuery_Filter_FieldFilter:
		return matchField(d, x.FieldFilter)
	case *pb.StructuredQuery_Filter_UnaryFilter:
		path, _ := parseFieldPath(x.UnaryFilter.GetField().GetFieldPath())
		v := getField(d.GetFields(), path)
		if v == nil {
			return false
		}
		switch x.UnaryFilter.GetOp() {
		case pb.StructuredQuery_UnaryFilter_IS_NULL:
			return isNullValue(v)
		case pb.StructuredQuery_UnaryFilter_IS_NAN:
			return isNaNValue(v)
		case pb.StructuredQuery_UnaryFilter_IS_NOT_NULL:
			return !isNullValue(v)
		case pb.StructuredQuery_UnaryFilter_IS_NOT_NAN:
			return !isNaNValue(v)
		}
	}
	return false
}

// matchField follows Firestore's semantics: a document without the field
// never matches; range operators only match values of the operand's type.
func matchField(d *pb.Document, ff *pb.StructuredQuery_FieldFilter) bool {
	var path []string
	if fp := ff.GetField().GetFieldPath(); fp != namePath {
		path, _ = parseFieldPath(fp)
	}
	v := fieldOf(d, path)
	if v == nil {
		return false
	}
	operand := ff.GetValue()
	switch ff.GetOp() {
	case pb.StructuredQuery_FieldFilter_EQUAL:
		return valuesEqual(v, operand)
	case pb.StructuredQuery_FieldFilter_NOT_EQUAL:
		return !valuesEqual(v, operand)
	case pb.StructuredQuery_FieldFilter_LESS_THAN:
		return typeRank(v) == typeRank(operand) && compareValues(v, operand) < 0
	case pb.StructuredQuery_FieldFilter_LESS_THAN_OR_EQUAL:
		return typeRank(v) == typeRank(operand) && compareValues(v, operand) <= 0
	case pb.StructuredQuery_FieldFilter_GREATER_THAN:
		return typeRank(v) == typeRank(operand) && compareValues(v, operand) > 0
	case pb.StructuredQuery_FieldFilter_GREATER_THAN_OR_EQUAL:
		return typeRank(v) == typeRank(operand) && compareValues(v, operand) >= 0
	case pb.StructuredQuery_FieldFilter_IN:
		return containsValue(operand.GetArrayValue().GetValues(), v)
	case pb.StructuredQuery_FieldFilter_NOT_IN:
		vals := operand.GetArrayValue().GetValues()
		if isNullValue(v) || slices.ContainsFunc(vals, isNullValue) {
			return false
		}
		return !containsValue(vals, v)
	case pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS:
		arr, ok := v.GetValueType().(*pb.Value_ArrayValue)
		return ok && containsValue(arr.ArrayValue.GetValues(), operand)
	case pb.StructuredQuery_FieldFilter_ARRAY_CONTAINS_ANY:
		arr, ok := v.GetValueType().(*pb.Value_ArrayValue)
		if !ok {
			return false
		}
		for _, want := range operand.GetArrayValue().GetValues() {
			if containsValue(arr.ArrayValue.GetValues(), want) {
				return true
			}
		}
	}
	return false
}

// candidatesLocked returns the documents in the query's scope as of t.
// Caller holds s.mu.
func (s *store) candidatesLocked(p *plannedQuery, t time.Time) []*pb.Document {
	var out []*pb.Document
	add := func(c map[string]*docEntry) {
		for _, e := range c {
			if d := e.at(t); d != nil {
				out = append(out, d)
			}
		}
	}
	if !p.allDesc {
		add(s.colls[p.parent+"/"+p.collection])
		return out
	}
	prefix := p.parent + "/"
	for path, c := range s.colls {
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		if p.collection != "" && path[strings.LastIndexByte(path, '/')+1:] != p.collection {
			continue
		}
		add(c)
	}
	return out
}

// queryResult is the outcome of running a query.
type queryResult struct {
	docs    []*pb.Document
	skipped int
}

// runQueryLocked evaluates p as of t. Caller holds s.mu.
func (s *store) runQueryLocked(p *plannedQuery, t time.Time) queryResult {
	cands := s.candidatesLocked(p, t)
	docs := cands[:0]
	for _, d := range cands {
		if p.filter != nil && !matches(d, p.filter) {
			continue
		}
		ok := true
		for _, o := range p.orders {
			if o.path != nil && getField(d.GetFields(), o.path) == nil {
				ok = false // ordering by a field excludes documents without it
				break
			}
		}
		if ok {
			docs = append(docs, d)
		}
	}
	slices.SortFunc(docs, func(a, b *pb.Document) int { return compareDocs(p.orders, a, b) })
	if p.start != nil {
		i := 0
		for i < len(docs) {
			c := cursorCompare(p.orders, docs[i], p.start.GetValues())
			if c > 0 || (c == 0 && p.start.GetBefore()) {
				break
			}
			i++
		}
		docs = docs[i:]
	}
	if p.end != nil {
		i := len(docs)
		for i > 0 {
			c := cursorCompare(p.orders, docs[i-1], p.end.GetValues())
			if c < 0 || (c == 0 && !p.end.GetBefore()) {
				break
			}
			i--
		}
		docs = docs[:i]
	}
	res := queryResult{}
	if p.offset > 0 {
		res.skipped = min(p.offset, len(docs))
		docs = docs[res.skipped:]
	}
	if p.limit >= 0 && len(docs) > p.limit {
		docs = docs[:p.limit]
	}
	res.docs = docs
	return res
}

func compareDocs(orders []orderSpec, a, b *pb.Document) int {
	for _, o := range orders {
		var c int
		if o.path == nil {
			c = compareRefs(a.GetName(), b.GetName())
		} else {
			c = compareValues(getField(a.GetFields(), o.path), getField(b.GetFields(), o.path))
		}
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// cursorCompare compares a document's ordering values with a cursor's
// (a prefix of the orderings), in query order.
func cursorCompare(orders []orderSpec, d *pb.Document, vals []*pb.Value) int {
	for i, v := range vals {
		o := orders[i]
		var c int
		if o.path == nil {
			c = compareRefs(d.GetName(), v.GetReferenceValue())
		} else {
			c = compareValues(getField(d.GetFields(), o.path), v)
		}
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// shape applies the query's projection to a result document.
func (p *plannedQuery) shape(d *pb.Document) *pb.Document {
	if p.nameOnly {
		return &pb.Document{Name: d.GetName(), CreateTime: d.GetCreateTime(), UpdateTime: d.GetUpdateTime()}
	}
	if p.projection == nil {
		return d
	}
	return &pb.Document{Name: d.GetName(), Fields: project(d.GetFields(), p.projection), CreateTime: d.GetCreateTime(), UpdateTime: d.GetUpdateTime()}
}

// aggregate computes the aggregations over the query's result documents.
func aggregate(aggs []*pb.StructuredAggregationQuery_Aggregation, docs []*pb.Document) (map[string]*pb.Value, error) {
	out := make(map[string]*pb.Value, len(aggs))
	for i, a := range aggs {
		alias := a.GetAlias()
		if alias == "" {
			alias = fmt.Sprintf("field_%d", i+1)
		}
		if _, dup := out[alias]; dup {
			return nil, invalid("duplicate aggregation alias %q", alias)
		}
		switch op := a.GetOperator().(type) {
		case *pb.StructuredAggregationQuery_Aggregation_Count_:
			n := int64(len(docs))
			if up := op.Count.GetUpTo(); up != nil {
				if up.GetValue() <= 0 {
					return nil, invalid("count up_to must be positive")
				}
				n = min(n, up.GetValue())
			}
			out[alias] = intValue(n)
		case *pb.StructuredAggregationQuery_Aggregation_Sum_:
			path, err := parseFieldPath(op.Sum.GetField().GetFieldPath())
			if err != nil {
				return nil, invalid("sum: %v", err)
			}
			out[alias] = sumValues(numericValues(docs, path))
		case *pb.StructuredAggregationQuery_Aggregation_Avg_:
			path, err := parseFieldPath(op.Avg.GetField().GetFieldPath())
			if err != nil {
				return nil, invalid("avg: %v", err)
			}
			vals := numericValues(docs, path)
			if len(vals) == 0 {
				out[alias] = nullValue()
				continue
			}
			sum := 0.0
			for _, v := range vals {
				sum += toFloat(v)
			}
			out[alias] = doubleValue(sum / float64(len(vals)))
		default:
			return nil, invalid("unsupported aggregation for alias %q", alias)
		}
	}
	return out, nil
}

func numericValues(docs []*pb.Document, path []string) []*pb.Value {
	var out []*pb.Value
	for _, d := range docs {
		if v := getField(d.GetFields(), path); v != nil && typeRank(v) == rankNumber {
			out = append(out, v)
		}
	}
	return out
}

// sumValues sums integers exactly while they fit, otherwise as doubles.
func sumValues(vals []*pb.Value) *pb.Value {
	var isum int64
	allInt := true
	fsum := 0.0
	for _, v := range vals {
		fsum += toFloat(v)
		if !allInt {
			continue
		}
		i, ok := v.GetValueType().(*pb.Value_IntegerValue)
		if !ok {
			allInt = false
			continue
		}
		next := isum + i.IntegerValue
		if (i.IntegerValue > 0 && next < isum) || (i.IntegerValue < 0 && next > isum) {
			allInt = false
			continue
		}
		isum = next
	}
	if allInt {
		return intValue(isum)
	}
	return doubleValue(fsum)
}

// checkQueriesLocked re-runs a transaction's queries and fails with ABORTED
// when a result changed (another document set, or a document with another
// update time), which keeps queries in read-write transactions serializable
// without range locks. Caller holds s.mu.
func (s *store) checkQueriesLocked(qs []recordedQuery) error {
	for _, q := range qs {
		res := s.runQueryLocked(q.p, time.Time{})
		same := len(res.docs) == len(q.hits)
		for i := 0; same && i < len(res.docs); i++ {
			d, h := res.docs[i], q.hits[i]
			ut := d.GetUpdateTime()
			same = d.GetName() == h.name && ut.GetSeconds() == h.updSecs && int64(ut.GetNanos()) == h.updNanos
		}
		if !same {
			return status.Error(codes.Aborted, "Transaction aborted: the result of a query it ran changed before commit. Please try again.")
		}
	}
	return nil
}
