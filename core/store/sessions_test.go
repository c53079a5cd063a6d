package store

import (
	"reflect"
	"testing"

	"github.com/eddy-cdp/eddy/core/session"
)

func TestCoalesce(t *testing.T) {
	id := func(b byte) session.ID { return session.ID{b} }
	ch := func(kind session.ChangeKind, ws string, s, absorbed byte, events int) session.Change {
		c := session.Change{Kind: kind, Session: session.Session{WorkspaceID: ws, ID: id(s), Events: events}}
		if absorbed != 0 {
			c.Absorbed = id(absorbed)
		}
		return c
	}
	changes := []session.Change{
		ch(session.Started, "w", 1, 0, 1),
		ch(session.Started, "w", 2, 0, 1),
		ch(session.Started, "v", 2, 0, 1), // another workspace, same id
		ch(session.Updated, "w", 1, 0, 2),
		ch(session.Started, "w", 3, 0, 1),
		ch(session.Merged, "w", 2, 1, 3), // 2 absorbs 1
		ch(session.Merged, "w", 3, 2, 4), // 3 absorbs 2: 1 ends in 3
		ch(session.Started, "w", 5, 0, 1),
		ch(session.Merged, "w", 6, 5, 2),  // a late event renames 5 to 6
		ch(session.Started, "w", 5, 0, 1), // 5 lives again
		ch(session.Closed, "w", 3, 0, 4),
	}
	final, merges := coalesce(changes)
	type key struct {
		ws     string
		id     byte
		events int
	}
	var got []key
	for _, s := range final {
		got = append(got, key{s.WorkspaceID, s.ID[0], s.Events})
	}
	want := []key{{"v", 2, 1}, {"w", 3, 4}, {"w", 6, 2}, {"w", 5, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("final states %v, want %v", got, want)
	}
	wantMerges := map[sessionKey]session.ID{{"w", id(1)}: id(3), {"w", id(2)}: id(3)}
	if !reflect.DeepEqual(merges, wantMerges) {
		t.Errorf("merges %v, want %v", merges, wantMerges)
	}
	if final[1] != &changes[10].Session {
		t.Errorf("session 3: not its last (closed) state")
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"a\x00b":      "ab",
		"bad\xffutf8": "bad\uFFFDutf8",
		"\x00\xc3":    "\uFFFD",
		"":            "",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMicros(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{{0.1, "100000e-6"}, {19.99, "19990000e-6"}, {-2.5, "-2500000e-6"}, {1e300, "0e-6"}} {
		n := micros(c.in)
		if got := n.Int.String() + "e" + "-6"; got != c.want || n.Exp != -6 {
			t.Errorf("micros(%v) = %se%d, want %s", c.in, n.Int, n.Exp, c.want)
		}
	}
}
