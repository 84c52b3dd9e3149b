module github.com/labplatform/platform/lifecycle

go 1.26
