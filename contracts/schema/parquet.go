package schema

import (
	"fmt"

	"github.com/parquet-go/parquet-go"
)

// Parquet returns the Parquet layout of a curated results file, as a
// parquet-go schema. parquet-go orders a group's columns by name; readers
// (BigQuery among them) address columns by name, so order carries no meaning.
// Files written through Arrow (pqarrow) from Arrow() have the same columns with
// the same physical and logical types; a test holds the two to that.
func Parquet() *parquet.Schema {
	g := make(parquet.Group, len(columns))
	for _, c := range columns {
		n := parquetNode(c.Kind)
		if !c.Required {
			n = parquet.Optional(n)
		}
		g[c.Name] = n
	}
	return parquet.NewSchema("result", g)
}

func parquetNode(k Kind) parquet.Node {
	switch k {
	case String:
		return parquet.String()
	case Float64:
		return parquet.Leaf(parquet.DoubleType)
	case Int64:
		return parquet.Int(64)
	case Timestamp:
		return parquet.Timestamp(parquet.Microsecond)
	default:
		panic(fmt.Sprintf("schema: no Parquet type for %v", k)) // unreachable: columns is a constant table checked by tests
	}
}
