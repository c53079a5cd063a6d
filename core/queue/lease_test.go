package queue

import (
	"context"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

func TestLease(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	a := NewLease(rdb, prefix+":lease:x", "a", 200*time.Millisecond)
	b := NewLease(rdb, prefix+":lease:x", "b", 200*time.Millisecond)
	for _, step := range []struct {
		name string
		f    func(context.Context) (bool, error)
		want bool
	}{
		{"a takes the free lease", a.Acquire, true},
		{"a takes it again (a restart)", a.Acquire, true},
		{"b cannot take a's lease", b.Acquire, false},
		{"b cannot renew a's lease", b.Renew, false},
		{"a renews its lease", a.Renew, true},
	} {
		got, err := step.f(ctx)
		testenv.Must(t, err, "%s", step.name)
		if got != step.want {
			t.Fatalf("%s: %v, want %v", step.name, got, step.want)
		}
	}
	testenv.Must(t, b.Release(ctx), "b releases what it does not hold")
	if ok, _ := b.Acquire(ctx); ok {
		t.Fatal("b's release freed a's lease")
	}
	testenv.Must(t, a.Release(ctx), "a releases")
	if ok, _ := b.Acquire(ctx); !ok {
		t.Fatal("b cannot take a released lease")
	}
	time.Sleep(300 * time.Millisecond)
	if ok, _ := a.Acquire(ctx); !ok {
		t.Fatal("a cannot take a lease that expired")
	}
}
