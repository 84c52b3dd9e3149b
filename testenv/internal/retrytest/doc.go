// Package retrytest proves what testenv adds to pstest for delivery: with
// testenv.Options.PubSubRetryBackoff, nacked messages come back after their
// subscription's retry backoff; and always, a StreamingPull's flow control
// (max_outstanding_messages) is honoured. It has tests only; they run on an
// Env of their own, with the option on, since a test binary holds one Env
// and the option changes how every retry policy behaves.
package retrytest
