// Package contracts is the root of the shapes every module of the lab
// platform shares; it holds no code of its own. Its packages:
//
//   - schema: the canonical result row and its Arrow, Parquet and BigQuery layouts;
//   - robotcsv: the robot CSV export versions and the header detector;
//   - labtests: LOINC test reference data, units, conversions and flags;
//   - names: bucket, topic, collection, table and object names;
//   - lineage: the lineage document of one raw object's ingestion;
//   - summary: the per-patient summary document;
//   - config: the platform settings every service reads;
//   - gcp: the Cloud Storage, Pub/Sub, Firestore and BigQuery clients.
package contracts
