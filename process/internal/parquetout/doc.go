// Package parquetout writes curated Parquet files. It owns the step from
// canonical result rows, handed over as Arrow record batches in
// schema.Arrow(), to one Parquet file with the layout of schema.Parquet():
// BYTE_ARRAY STRING, DOUBLE, INT64 and INT64 TIMESTAMP(MICROS, UTC) columns,
// required or optional as contracts/schema says, which BigQuery loads into
// lab.results by column name.
//
// The file has zstd-compressed pages (level 1 by default), statistics (min,
// max, null count) for every column chunk and page, a page index, and data
// pages v1. Codes, names, units, flags, statuses and the per-file constants
// are dictionary encoded; ids, numbers and timestamps are plain. Rows keep
// the order of the batches (the cleaning stage sorts them by patient_id and
// test_code). A row group ends after Options.RowGroupRows rows (default
// 1,000,000) or Options.RowGroupBytes of plain values (default 128 MiB,
// about 520,000 typical rows), whichever comes first; a batch may span row
// groups. The columns are stored in name order, parquet-go's; readers,
// BigQuery among them, address them by name. A file without rows has the
// schema and no row groups, and loads as no rows.
//
// A Writer keeps one row group, as compressed pages (about 11 MB for
// 500,000 rows), and a page of at most 256 KiB per column: its memory does
// not grow with the file.
//
// Errors: Write rejects a batch of another schema, and the file stays as it
// was. A failure of the underlying io.Writer comes back from the Write that
// writes out a full row group, or from Close, wrapped with the rows
// concerned; from then on every call returns it, and the output is not a
// valid file.
//
// # Implementation: parquet-go, not pqarrow
//
// Two implementations were measured on the same input and options:
// github.com/parquet-go/parquet-go, converting each Arrow column to
// parquet.Values for the column writers (this package), and Arrow's own
// writer, pqarrow.FileWriter with buffered row groups (kept in
// parquetout_bench_test.go as pqarrowWriter, run by the same tests).
// parquet-go won: for the same file it is 1.6 to 1.9 times as fast, it
// allocates 12 times less, keeps 9 MB between batches instead of 70 MB, and
// its benchmark process peaks at 150 MB resident instead of 280 MB, under
// the 200 MB the process is allowed. Without any dictionary pqarrow comes
// closer (parquet-go is still 7 to 21% faster), but its files are 19%
// larger and its memory stays as high.
//
// BenchmarkWrite writes 800,000 generated rows (100,000 patients with 8 of
// 28 LOINC tests each, UCUM units, times within one day, one source object)
// in batches of 65,536 with default Options: two row groups. Medians of
// five runs, [lowest-highest] where they spread, of
//
//	cd process && go test -run '^$' -bench Write -benchtime 2x -benchmem -cpu 1,2 ./internal/parquetout/
//
// on 2 vCPUs (nproc 2; model name "Intel(R) Xeon(R) Processor"), Linux,
// Go 1.26.8, on 2026-11-22, with other jobs running (load average 1.4 to
// 4.6). MB/s counts 125 bytes of CSV a row; rows/cpu-s divides by the
// process's CPU time, which that load disturbs less than wall time.
//
//	                  GOMAXPROCS  rows/s           rows/cpu-s  CSV MB/s  file     B/op    allocs/op  peak heap  peak RSS  live heap
//	parquet-go        1           570k [549-676]   590k        71        18.5 MB   76 MB       4.6k     118 MB    147 MB      9 MB
//	parquet-go        2           640k [513-818]   646k        80        18.5 MB   72 MB       4.2k     126 MB    154 MB      9 MB
//	pqarrow           1           351k [288-491]   359k        44        18.6 MB  904 MB      16.0M     239 MB    282 MB     71 MB
//	pqarrow           2           345k [308-375]   343k        43        18.6 MB  928 MB      16.0M     240 MB    279 MB     68 MB
//	pqarrow-nodict    1           524k [410-707]   535k        66        22.0 MB  467 MB      21.6k     221 MB    258 MB     61 MB
//	pqarrow-nodict    2           551k [501-665]   602k        69        22.0 MB  475 MB      21.7k     223 MB    263 MB     64 MB
//	parquet-go-zstd3  1           513k [434-567]   505k        64        16.6 MB  101 MB       4.0k     160 MB    178 MB      6 MB
//	parquet-go-zstd3  2           511k [457-519]   498k        64        16.6 MB  122 MB       4.0k     160 MB    185 MB      9 MB
//
// Peak heap is the highest HeapInuse sampled while writing, peak RSS the
// process's VmHWM; both include the generator of the batches and garbage
// not yet collected. Live heap is what the writer keeps between batches.
// An earlier set of five runs, on a quieter machine, gave the same ratios
// (parquet-go 677k and 685k rows/cpu-s, pqarrow 370k and 361k,
// pqarrow-nodict 623k and 568k). With 4,000,000 rows (-args
// -parquetout.rows=4000000, eight row groups) the live heap stays at 8 MB
// with parquet-go and 78 MB with pqarrow.
//
// Why:
//   - pqarrow's dictionary encoder boxes every string it hashes into an
//     interface (arrow-go's BinaryMemoTable.GetOrInsert and InsertOrGet):
//     two heap allocations per value, 16 million for this file. That, and
//     the garbage collection it causes, is the difference in speed.
//     parquet-go's dictionaries insert without allocating.
//   - pqarrow keeps, per column, uncompressed and compressed page buffers
//     and the dictionary indexes of the open page, and grows the buffered
//     row group by doubling: 60 to 70 MB for a row group, dictionaries or
//     not. parquet-go keeps little beyond the compressed pages.
//   - pqarrow panics instead of returning an error when it cannot write the
//     file's magic number, drops the error of writing out a row group when
//     the next one starts, and closes the io.Writer if it is an io.Closer;
//     pqarrowWriter has to work around all three.
//
// Settings measured with parquet-go (same benchmark):
//   - Dictionaries on sample_id and patient_id make the file 3% larger
//     (sample_id 521 KB plain, 862 KB as a dictionary; patient_id 110 KB
//     against 355 KB): sorted by patient, an id's repeats are adjacent and
//     zstd removes them. On codes, names, units and statuses a dictionary
//     saves 55 to 76% (test_code 1.11 MB plain, 0.50 MB as a dictionary;
//     test_name 2.11 MB against 0.50 MB).
//   - zstd level 3 makes the file 10% smaller (16.6 MB) for 14 to 23% less
//     throughput and about 30 MB more peak RSS (a larger encoder); the
//     default is level 1, Options.ZstdLevel chooses.
//   - A page buffer of 1 MiB instead of 256 KiB was no faster and kept
//     several times more memory.
//
// The local BigQuery of testenv loads these files, several row groups with
// nulls and an empty one (subpackage loadtest); it reads Parquet with
// parquet-go itself.
package parquetout
