package testenv

import (
	"context"
	"errors"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
)

// Clients are the official clients of one platform, built by contracts/gcp
// exactly as services build them.
type Clients struct {
	Storage   *storage.Client
	PubSub    *pubsub.Client
	Firestore *firestore.Client
	BigQuery  *bigquery.Client
}

// NewClients builds the four clients of p. Close them when done.
func NewClients(ctx context.Context, p config.Platform) (*Clients, error) {
	var c Clients
	var err error
	if c.Storage, err = gcp.NewStorage(ctx, p); err != nil {
		return nil, err
	}
	if c.PubSub, err = gcp.NewPubSub(ctx, p); err != nil {
		c.Close()
		return nil, err
	}
	if c.Firestore, err = gcp.NewFirestore(ctx, p); err != nil {
		c.Close()
		return nil, err
	}
	if c.BigQuery, err = gcp.NewBigQuery(ctx, p); err != nil {
		c.Close()
		return nil, err
	}
	return &c, nil
}

// Close closes every client that was built.
func (c *Clients) Close() error {
	var errs []error
	if c.Storage != nil {
		errs = append(errs, c.Storage.Close())
	}
	if c.PubSub != nil {
		errs = append(errs, c.PubSub.Close())
	}
	if c.Firestore != nil {
		errs = append(errs, c.Firestore.Close())
	}
	if c.BigQuery != nil {
		errs = append(errs, c.BigQuery.Close())
	}
	return errors.Join(errs...)
}
