module github.com/labplatform/platform/ingest

go 1.26
