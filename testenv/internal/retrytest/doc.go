// Package retrytest proves testenv.Options.PubSubRetryBackoff: nacked
// messages come back after their subscription's retry backoff. It has tests
// only; they run on an Env of their own, with the option on, since a test
// binary holds one Env and the option changes how every retry policy
// behaves.
package retrytest
