// Command firestore-emulator runs the platform's Firestore emulator
// (package firestoreemu) as a standalone process, serving gRPC and the
// HTTP reset endpoint on one host:port.
//
//	firestore-emulator --host-port 127.0.0.1:8080 --project demo --data-file /tmp/fs.pb
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "firestore-emulator:", err)
		os.Exit(1)
	}
}

// config is the command's configuration.
type config struct {
	HostPort string
	Project  string
	DataFile string
}

// loadConfig parses flags, with defaults from the environment:
// FIRESTORE_EMULATOR_HOST for --host-port and GOOGLE_CLOUD_PROJECT for --project.
func loadConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	cfg := config{HostPort: "127.0.0.1:8080", Project: "demo-project"}
	if v := getenv("FIRESTORE_EMULATOR_HOST"); v != "" {
		cfg.HostPort = v
	}
	if v := getenv("GOOGLE_CLOUD_PROJECT"); v != "" {
		cfg.Project = v
	}
	fs := flag.NewFlagSet("firestore-emulator", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.HostPort, "host-port", cfg.HostPort, "host:port to serve gRPC and HTTP on (port 0 picks a free port)")
	fs.StringVar(&cfg.Project, "project", cfg.Project, "project ID printed for clients (the emulator accepts every project)")
	fs.StringVar(&cfg.DataFile, "data-file", "", "optional file to load at start and save to while running and on exit")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.HostPort == "" {
		return config{}, errors.New("--host-port must not be empty")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := loadConfig(args, getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := firestoreemu.Start(ctx, firestoreemu.Options{Addr: cfg.HostPort, DataFile: cfg.DataFile, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Printf("export FIRESTORE_EMULATOR_HOST=%s\n", srv.Addr())
	logger.Info("serving", "project", cfg.Project, "reset", "curl -X DELETE http://"+srv.Addr()+"/emulator/v1/projects/"+cfg.Project+"/databases/(default)/documents")
	<-ctx.Done()
	logger.Info("shutting down")
	return srv.Close()
}
