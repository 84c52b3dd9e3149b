package testenv

// This file is compiled only into the package's tests: it exposes what the
// outage tests wait for instead of sleeping.

// RouterPublishFailures counts the notification router's failed attempts to
// republish an object event (each is nacked and retried).
func (e *Env) RouterPublishFailures() int64 { return e.router.failures.Load() }
