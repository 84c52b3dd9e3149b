package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
)

// PubSub publishes each alert as a JSON message with the attributes kind and
// dag_id (for subscription filters), and waits until the server has it.
type PubSub struct{ Publisher *pubsub.Publisher }

// Notify publishes the alert.
func (p PubSub) Notify(ctx context.Context, a Alert) error {
	if p.Publisher == nil {
		return errors.New("pubsub notifier: no Publisher")
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("pubsub notifier: encode alert: %w", err)
	}
	res := p.Publisher.Publish(ctx, &pubsub.Message{
		Data:       data,
		Attributes: map[string]string{"kind": string(a.Kind), "dag_id": a.DAGID},
	})
	if _, err := res.Get(ctx); err != nil {
		return fmt.Errorf("publish alert to %s: %w", p.Publisher, err)
	}
	return nil
}
