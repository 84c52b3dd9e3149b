package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
)

// sql runs `labstack sql 'SELECT ...'`: one standard-SQL query on the
// BigQuery emulator of a running labstack (or whatever BIGQUERY_EMULATOR_HOST
// names), printed as an aligned table.
func sql(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("labstack sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: labstack sql [flags] 'SELECT ...'")
		fs.PrintDefaults()
	}
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	project := fs.String("project", env(config.EnvProject, "lab-local"), "project id (env "+config.EnvProject+")")
	host := fs.String("bigquery-emulator", env(config.EnvBigQueryEmulator, "127.0.0.1:9050"), "BigQuery emulator host:port (env "+config.EnvBigQueryEmulator+")")
	maxRows := fs.Int("max-rows", 100, "print at most this many rows")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("sql: want one query argument")
	}
	p := config.Platform{Project: *project, Prefix: *project, BigQueryLocation: "EU"}
	p.Emulators.BigQuery = *host
	bq, err := gcp.NewBigQuery(ctx, p)
	if err != nil {
		return err
	}
	defer bq.Close()
	it, err := bq.Query(fs.Arg(0)).Read(ctx)
	if err != nil {
		return fmt.Errorf("sql: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	var names []string
	for _, f := range it.Schema {
		names = append(names, f.Name)
	}
	printed := 0
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("sql: %w", err)
		}
		if printed == 0 {
			if len(names) == 0 { // the schema arrives with the first page
				for _, f := range it.Schema {
					names = append(names, f.Name)
				}
			}
			fmt.Fprintln(tw, strings.Join(names, "\t"))
		}
		if printed == *maxRows {
			fmt.Fprintf(tw, "... (more rows; -max-rows)\n")
			break
		}
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		printed++
	}
	if printed == 0 {
		fmt.Fprintln(tw, "(no rows)")
	}
	return tw.Flush()
}
