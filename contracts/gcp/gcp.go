// Package gcp builds the Google Cloud clients every service uses, in one
// place: Cloud Storage, Pub/Sub (v2), Firestore and BigQuery. Where
// config.Platform names an emulator, the client talks to it over plain HTTP or
// gRPC without credentials; otherwise it uses Application Default
// Credentials, as on GCP.
//
// The endpoints are passed explicitly rather than read from the process
// environment, so several configurations can live in one process (tests).
package gcp

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/labplatform/platform/contracts/config"
)

// StorageEndpoint returns the JSON API endpoint of a Cloud Storage emulator
// given as host:port or http://host:port.
func StorageEndpoint(emulator string) string {
	if !strings.Contains(emulator, "://") {
		emulator = "http://" + emulator
	}
	return strings.TrimSuffix(emulator, "/") + "/storage/v1/"
}

// NewStorage returns a Cloud Storage client for p.
func NewStorage(ctx context.Context, p config.Platform, opts ...option.ClientOption) (*storage.Client, error) {
	if p.Emulators.Storage != "" {
		// JSON API reads: emulators serve the XML API's object reads only
		// on their public host name.
		opts = append([]option.ClientOption{
			option.WithEndpoint(StorageEndpoint(p.Emulators.Storage)),
			option.WithoutAuthentication(),
			storage.WithJSONReads(),
		}, opts...)
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage client: %w", err)
	}
	return c, nil
}

// NewPubSub returns a Pub/Sub client for p's project.
func NewPubSub(ctx context.Context, p config.Platform, opts ...option.ClientOption) (*pubsub.Client, error) {
	if p.Emulators.PubSub != "" {
		opts = append([]option.ClientOption{
			option.WithEndpoint(p.Emulators.PubSub),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithGRPCDialOption(emulatorReconnect),
			option.WithoutAuthentication(),
			option.WithTelemetryDisabled(),
		}, opts...)
	}
	c, err := pubsub.NewClient(ctx, p.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client for project %s: %w", p.Project, err)
	}
	return c, nil
}

// NewFirestore returns a client of p's project's (default) database.
func NewFirestore(ctx context.Context, p config.Platform, opts ...option.ClientOption) (*firestore.Client, error) {
	if p.Emulators.Firestore != "" {
		// What the client does itself for FIRESTORE_EMULATOR_HOST: plain
		// gRPC, and the "owner" bearer token emulators accept.
		conn, err := grpc.NewClient("passthrough:///"+p.Emulators.Firestore,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(emulatorOwner{}),
			emulatorReconnect,
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
		)
		if err != nil {
			return nil, fmt.Errorf("firestore emulator %s: %w", p.Emulators.Firestore, err)
		}
		opts = append([]option.ClientOption{option.WithGRPCConn(conn)}, opts...)
	}
	c, err := firestore.NewClient(ctx, p.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("firestore client for project %s: %w", p.Project, err)
	}
	return c, nil
}

// emulatorReconnect caps gRPC's reconnection backoff to an emulator at 2 s
// (gRPC's default grows to 120 s): a local emulator that was stopped and
// started again (the outage tests, a restarted labstack) is found again
// within seconds. GCP's front ends do not go away, so real clients keep
// gRPC's defaults.
var emulatorReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 5 * time.Second,
})

type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (emulatorOwner) RequireTransportSecurity() bool { return false }

// NewBigQuery returns a BigQuery client for p's project, running jobs in
// p.BigQueryLocation.
func NewBigQuery(ctx context.Context, p config.Platform, opts ...option.ClientOption) (*bigquery.Client, error) {
	if p.Emulators.BigQuery != "" {
		endpoint := p.Emulators.BigQuery
		if !strings.Contains(endpoint, "://") {
			endpoint = "http://" + endpoint
		}
		opts = append([]option.ClientOption{
			option.WithEndpoint(endpoint),
			option.WithoutAuthentication(),
		}, opts...)
	}
	c, err := bigquery.NewClient(ctx, p.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("bigquery client for project %s: %w", p.Project, err)
	}
	c.Location = p.BigQueryLocation
	return c, nil
}
