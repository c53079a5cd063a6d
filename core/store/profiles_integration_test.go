package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

func TestProfileReadsUnderRLS(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a, b := newSessionWorkspace(t, s, "prof-a"), newSessionWorkspace(t, s, "prof-b")
	apply := func(ev identity.Event) identity.Changes {
		t.Helper()
		ch, err := s.Identities().Apply(ctx, ev)
		testenv.Must(t, err, "apply %s", ev.MessageID)
		return ch
	}
	pa := apply(identity.Event{WorkspaceID: a.ID, MessageID: "a1", Type: "identify", AnonymousID: "anon", UserID: "u",
		Timestamp: st0, Traits: json.RawMessage(`{"email": "Ada@Example.com"}`)}).Profile
	pb := apply(identity.Event{WorkspaceID: b.ID, MessageID: "b1", Type: "identify", AnonymousID: "anon", UserID: "u", Timestamp: st0}).Profile

	for _, tc := range []struct{ kind, value string }{{"user_id", "u"}, {"anonymous_id", "anon"}, {"email", " ADA@example.com"}} {
		p, err := s.ProfileByIdentity(ctx, a, tc.kind, tc.value)
		testenv.Must(t, err, "profile by %s", tc.kind)
		if p.ID != pa || len(p.Identities) != 3 {
			t.Errorf("by %s %q: %+v, want %s with 3 identities", tc.kind, tc.value, p, pa)
		}
	}
	p, err := s.ProfileByIdentity(ctx, b, "user_id", "u")
	testenv.Must(t, err, "profile of b")
	if p.ID != pb {
		t.Errorf("b's u: %s, want %s", p.ID, pb)
	}
	for _, tc := range []struct{ kind, value string }{{"user_id", "nobody"}, {"phone", "u"}, {"email", "nobody@example.com"}} {
		if _, err := s.ProfileByIdentity(ctx, a, tc.kind, tc.value); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("by %s %q: %v, want ErrNotFound", tc.kind, tc.value, err)
		}
	}

	p, err = s.WorkspaceProfile(ctx, a, pa)
	testenv.Must(t, err, "profile %s", pa)
	if p.ID != pa || p.UserID != "u" {
		t.Errorf("profile %s: %+v", pa, p)
	}
	for _, id := range []string{pb, "not-a-uuid", "00000000-0000-4000-8000-00000000dead"} {
		if _, err := s.WorkspaceProfile(ctx, a, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("profile %s from a: %v, want ErrNotFound", id, err)
		}
	}
}
