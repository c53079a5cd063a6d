package identity

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const ws = "8b1f6d3e-0000-4000-8000-000000000001"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus some minutes.
func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func track(msg, anon, user string, min int) Event {
	return Event{WorkspaceID: ws, MessageID: msg, Type: "track", AnonymousID: anon, UserID: user, Timestamp: at(min)}
}

func identify(msg, anon, user string, min int, traits string) Event {
	return Event{WorkspaceID: ws, MessageID: msg, Type: "identify", AnonymousID: anon, UserID: user, Timestamp: at(min), Traits: json.RawMessage(traits)}
}

func alias(msg, prev, user string, min int) Event {
	return Event{WorkspaceID: ws, MessageID: msg, Type: "alias", PreviousID: prev, UserID: user, Timestamp: at(min)}
}

// anonAlias is an alias that links two anonymous ids (no userId).
func anonAlias(msg, prev, anon string, min int) Event {
	return Event{WorkspaceID: ws, MessageID: msg, Type: "alias", PreviousID: prev, AnonymousID: anon, Timestamp: at(min)}
}

// id parses the short form of an identity used in tests: a:x, u:x, e:x.
func id(s string) Identity {
	kind, value, _ := strings.Cut(s, ":")
	return Identity{map[string]Kind{"a": AnonymousID, "u": UserID, "e": Email}[kind], value}
}

func short(i Identity) string {
	return map[Kind]string{AnonymousID: "a", UserID: "u", Email: "e"}[i.Kind] + ":" + i.Value
}

// groups describes a graph as its profiles' identities, each sorted, in a
// stable order: "[a:a1 u:u1] [a:a2]".
func groups(g *Graph) string {
	var out []string
	for _, p := range g.Profiles() {
		var ids []string
		for _, i := range p.Identities {
			ids = append(ids, short(i))
		}
		slices.Sort(ids)
		out = append(out, "["+strings.Join(ids, " ")+"]")
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// profileOf returns the live profile an identity is linked to.
func profileOf(t *testing.T, g *Graph, s string) Profile {
	t.Helper()
	pid, ok := g.Lookup(id(s))
	if !ok {
		t.Fatalf("%s is not linked", s)
	}
	p, _ := g.Profile(pid)
	return p
}

func mustApply(t *testing.T, g *Graph, ev Event) Changes {
	t.Helper()
	ch, err := g.Apply(ev)
	if err != nil {
		t.Fatalf("apply %s: %v", ev.MessageID, err)
	}
	return ch
}

// canonical describes every live profile without its id or the stamps'
// message ids: what must not depend on arrival order.
func canonical(g *Graph) string {
	var out []string
	for _, p := range g.Profiles() {
		var ids []string
		for _, i := range p.Identities {
			ids = append(ids, short(i))
		}
		slices.Sort(ids)
		var b strings.Builder
		fmt.Fprintf(&b, "%v user=%q seen=%s..%s sessions=%d orders=%d revenue=%d last=%s",
			ids, p.UserID, p.FirstSeen.Format(time.RFC3339Nano), p.LastSeen.Format(time.RFC3339Nano),
			p.Sessions, p.Orders, p.RevenueMicros, p.LastOrder.ID)
		for _, tr := range p.Traits {
			fmt.Fprintf(&b, " %s=%s@%s/%s", tr.Key, tr.Value, tr.At.Format(time.RFC3339), tr.MessageID)
		}
		for _, c := range p.Consent {
			fmt.Fprintf(&b, " consent.%s=%t@%s/%s", c.Purpose, c.Granted, c.At.Format(time.RFC3339), c.MessageID)
		}
		out = append(out, b.String())
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// exact describes every live profile and every merge, ids included.
func exact(g *Graph) string {
	g.mu.Lock()
	merged := make([]string, 0, len(g.merged))
	for a, s := range g.merged {
		merged = append(merged, a+"->"+g.resolve(s))
	}
	g.mu.Unlock()
	slices.Sort(merged)
	b, _ := json.Marshal(g.Profiles())
	return string(b) + "\n" + strings.Join(merged, "\n")
}
