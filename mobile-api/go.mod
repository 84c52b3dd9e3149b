module github.com/labplatform/platform/mobile-api

go 1.26
