module github.com/labplatform/platform/serve

go 1.26
