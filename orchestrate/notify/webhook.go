package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Webhook POSTs each alert as JSON (Content-Type application/json) to URL. A
// non-2xx answer is an error. Network errors, 429 and 5xx answers are retried
// up to Retries times, waiting Backoff, then twice as long each time (at most
// a minute), unless ctx ends first; other 4xx answers are not retried.
type Webhook struct {
	URL string
	// Client defaults to a client with a 30 s timeout.
	Client  *http.Client
	Retries int
	// Backoff is the wait before the first retry; default 1 s.
	Backoff time.Duration
}

// maxBackoff caps the wait between webhook attempts.
const maxBackoff = time.Minute

// Notify posts the alert.
func (w Webhook) Notify(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("webhook: encode alert: %w", err)
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	wait := w.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for attempt := 0; ; attempt++ {
		retry, err := w.post(ctx, client, body)
		if err == nil {
			return nil
		}
		if !retry || attempt >= w.Retries {
			return fmt.Errorf("webhook %s: attempt %d: %w", w.URL, attempt+1, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("webhook %s: attempt %d: %w (gave up: %w)", w.URL, attempt+1, err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// post makes one attempt and says whether a failure may be retried.
func (w Webhook) post(ctx context.Context, client *http.Client, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	return retry, fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(snippet))
}
