module github.com/labplatform/platform/orchestrate

go 1.26
