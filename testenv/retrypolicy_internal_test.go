package testenv

import (
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestNackDeadlineSeconds(t *testing.T) {
	policy := func(lo, hi time.Duration) *pubsubpb.RetryPolicy {
		return &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(lo), MaximumBackoff: durationpb.New(hi)}
	}
	tests := []struct {
		name    string
		policy  *pubsubpb.RetryPolicy
		attempt int
		want    int32
	}{
		{name: "first attempt: the minimum", policy: policy(time.Second, 4*time.Second), attempt: 1, want: 1},
		{name: "second attempt: doubled", policy: policy(time.Second, 4*time.Second), attempt: 2, want: 2},
		{name: "third attempt: doubled again", policy: policy(time.Second, 4*time.Second), attempt: 3, want: 4},
		{name: "capped at the maximum", policy: policy(time.Second, 4*time.Second), attempt: 4, want: 4},
		{name: "maximum not a power of two of the minimum", policy: policy(3*time.Second, 10*time.Second), attempt: 3, want: 10},
		{name: "unknown attempt counts as the first", policy: policy(time.Second, 4*time.Second), attempt: 0, want: 1},
		{name: "huge attempt does not overflow", policy: policy(time.Second, 600*time.Second), attempt: 1 << 30, want: 600},
		{name: "process-raw's policy, fifth attempt", policy: policy(10*time.Second, 600*time.Second), attempt: 5, want: 160},
		{name: "process-raw's policy, eighth attempt", policy: policy(10*time.Second, 600*time.Second), attempt: 8, want: 600},
		{name: "unset bounds are GCP's defaults", policy: &pubsubpb.RetryPolicy{}, attempt: 1, want: 10},
		{name: "unset maximum is 600 s", policy: &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(100 * time.Second)}, attempt: 4, want: 600},
		{name: "a maximum beyond 600 s stops at the longest ack deadline", policy: policy(time.Second, time.Hour), attempt: 20, want: 600},
		{name: "a minimum beyond 600 s stops at the longest ack deadline", policy: policy(time.Hour, time.Hour), attempt: 1, want: 600},
		{name: "a minimum above the maximum gives the maximum", policy: policy(8*time.Second, 2*time.Second), attempt: 1, want: 2},
		{name: "fractions round up", policy: policy(1500*time.Millisecond, 10*time.Second), attempt: 1, want: 2},
		{name: "below a second rounds up to one", policy: policy(100*time.Millisecond, 10*time.Second), attempt: 2, want: 1},
		{name: "zero minimum redelivers at once", policy: policy(0, 10*time.Second), attempt: 3, want: 0},
		{name: "negative bounds redeliver at once", policy: policy(-time.Second, -time.Second), attempt: 2, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nackDeadlineSeconds(tt.policy, tt.attempt); got != tt.want {
				t.Errorf("nackDeadlineSeconds(%v, %d) = %d, want %d", tt.policy, tt.attempt, got, tt.want)
			}
		})
	}
}
