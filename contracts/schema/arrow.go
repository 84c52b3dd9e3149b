package schema

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// Arrow returns the Arrow schema of a batch of canonical result rows.
// Optional columns are nullable; timestamps are microseconds in UTC.
func Arrow() *arrow.Schema {
	fields := make([]arrow.Field, len(columns))
	for i, c := range columns {
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(c.Kind), Nullable: !c.Required}
	}
	return arrow.NewSchema(fields, nil)
}

func arrowType(k Kind) arrow.DataType {
	switch k {
	case String:
		return arrow.BinaryTypes.String
	case Float64:
		return arrow.PrimitiveTypes.Float64
	case Int64:
		return arrow.PrimitiveTypes.Int64
	case Timestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	default:
		panic(fmt.Sprintf("schema: no Arrow type for %v", k)) // unreachable: columns is a constant table checked by tests
	}
}
