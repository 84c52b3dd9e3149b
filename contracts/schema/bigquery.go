package schema

import (
	"fmt"

	"cloud.google.com/go/bigquery"
)

// BigQuery returns the BigQuery schema of lab.results.
func BigQuery() bigquery.Schema {
	s := make(bigquery.Schema, len(columns))
	for i, c := range columns {
		s[i] = &bigquery.FieldSchema{
			Name:        c.Name,
			Type:        bigQueryType(c.Kind),
			Required:    c.Required,
			Description: c.Description,
		}
	}
	return s
}

// ClusteringColumns are the columns lab.results is clustered by, in order.
var ClusteringColumns = []string{PatientID, TestCode}

// PartitionColumn is the column lab.results is partitioned by (by day).
const PartitionColumn = CollectedAt

// BigQueryTable returns the metadata lab.results is created with: the schema,
// daily partitions on DATE(collected_at) and clustering by patient and test.
func BigQueryTable() *bigquery.TableMetadata {
	return &bigquery.TableMetadata{
		Description: "Cleaned lab results, one row per (sample, test) result.",
		Schema:      BigQuery(),
		TimePartitioning: &bigquery.TimePartitioning{
			Type:  bigquery.DayPartitioningType,
			Field: PartitionColumn,
		},
		Clustering: &bigquery.Clustering{Fields: append([]string(nil), ClusteringColumns...)},
	}
}

func bigQueryType(k Kind) bigquery.FieldType {
	switch k {
	case String:
		return bigquery.StringFieldType
	case Float64:
		return bigquery.FloatFieldType
	case Int64:
		return bigquery.IntegerFieldType
	case Timestamp:
		return bigquery.TimestampFieldType
	default:
		panic(fmt.Sprintf("schema: no BigQuery type for %v", k)) // unreachable: columns is a constant table checked by tests
	}
}
