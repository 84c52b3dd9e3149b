module github.com/labplatform/platform/process

go 1.26
