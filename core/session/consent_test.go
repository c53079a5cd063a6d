package session

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

var (
	granted   = consent.Preferences{"analytics": true, "marketing": true}
	withdrawn = consent.Preferences{"analytics": true, "marketing": false}
	nothing   = consent.Preferences{}
)

// A session's consent is that of its latest event, by event time, that
// stated one, whatever the arrival order; events without consent leave it.
func TestSessionConsent(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   consent.Preferences // of the one session
	}{
		{"no event states consent", []Event{pv("a", 0, home), tr("b", minutes(1), "Clicked")}, nil},
		{"the first event's", []Event{pv("a", 0, home, consents(granted)), tr("b", minutes(1), "Clicked")}, granted},
		{"an event without consent does not clear it", []Event{pv("a", 0, home, consents(granted)), pv("b", minutes(1), home)}, granted},
		{"a later event withdraws", []Event{pv("a", 0, home, consents(granted)), tr("b", minutes(1), "Clicked", consents(withdrawn))}, withdrawn},
		{"a late, earlier event does not override a withdrawal", []Event{
			pv("a", 0, home, consents(withdrawn)), tr("late", -minutes(1), "Clicked", consents(granted)),
		}, withdrawn},
		{"a late event later than the withdrawal wins", []Event{
			pv("a", 0, home, consents(withdrawn)), pv("b", minutes(5), home), tr("late", minutes(3), "Clicked", consents(granted)),
		}, granted},
		{"an empty consent withdraws everything", []Event{pv("a", 0, home, consents(granted)), tr("b", minutes(1), "Clicked", consents(nothing))}, nothing},
		{"same instant: the message id decides, not arrival", []Event{
			pv("a", 0, home, consents(granted)), tr("b", 0, "Clicked", consents(withdrawn)),
		}, func() consent.Preferences {
			a, b := pv("a", 0, home), tr("b", 0, "Clicked")
			if markOf(&a).before(markOf(&b)) {
				return withdrawn
			}
			return granted
		}()},
		{"invalid purposes are dropped", []Event{pv("a", 0, home, consents(consent.Preferences{"analytics": true, "Bad Name": true, "": true}))},
			consent.Preferences{"analytics": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range [][]int{forward(len(tt.events)), backward(len(tt.events))} {
				v := newTestWorkspace(t, nil).NewVisitor(testAnon)
				var events []Event
				for _, i := range order {
					events = append(events, tt.events[i])
				}
				changes := applyAll(t, v, events...)
				if v.Len() != 1 {
					t.Fatalf("arrival order %v: %d sessions, want 1", order, v.Len())
				}
				if got := changes[len(changes)-1].Session.Consent; !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("arrival order %v: consent %v (nil: %v), want %v (nil: %v)", order, got, got == nil, tt.want, tt.want == nil)
				}
			}
		})
	}
}

func forward(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func backward(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = n - 1 - i
	}
	return out
}

// Sessions of one visitor each keep their own consent; a merge keeps the
// latest; a closed session carries its consent.
func TestConsentAcrossSessions(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	applyAll(t, v,
		pv("a1", 0, home, consents(withdrawn)),
		pv("a2", minutes(5), home),
		pv("b1", minutes(40), home, consents(granted)),
		pv("c1", minutes(120), home),
	)
	ss := v.Sessions()
	if len(ss) != 3 || !reflect.DeepEqual(ss[0].Consent, withdrawn) || !reflect.DeepEqual(ss[1].Consent, granted) || ss[2].Consent != nil {
		t.Fatalf("consents %v, want [%v %v <nil>]", consentsOf(ss), withdrawn, granted)
	}
	changes := applyAll(t, v, tr("bridge", minutes(20), "Scrolled", consents(nothing)))
	if len(changes) != 1 || changes[0].Kind != Merged || !reflect.DeepEqual(changes[0].Session.Consent, granted) {
		t.Fatalf("after the bridge: %s with consent %v, want a merge keeping the later %v", kinds(changes), changes[0].Session.Consent, granted)
	}
	changes = v.Close(t0.Add(10*time.Hour), nil)
	if len(changes) != 2 || !reflect.DeepEqual(changes[0].Session.Consent, granted) || changes[1].Session.Consent != nil {
		t.Fatalf("closed %s with consents %v, want the merged session's %v and nil", kinds(changes), consentsOf([]Session{changes[0].Session, changes[1].Session}), granted)
	}
}

func consentsOf(ss []Session) []consent.Preferences {
	var out []consent.Preferences
	for _, s := range ss {
		out = append(out, s.Consent)
	}
	return out
}

// A consent of more than consent.MaxMessagePurposes purposes keeps the
// first by name: those left out read as not granted, so the cut never
// grants what the visitor refused.
func TestConsentIsBounded(t *testing.T) {
	p := consent.Preferences{}
	for i := range consent.MaxMessagePurposes + 10 {
		p[fmt.Sprintf("p%03d_%s", i, strings.Repeat("x", 58))] = i%2 == 0
	}
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	changes := applyAll(t, v, pv("a", 0, home, consents(p)))
	got := changes[0].Session.Consent
	if len(got) != consent.MaxMessagePurposes {
		t.Fatalf("%d purposes kept, want %d", len(got), consent.MaxMessagePurposes)
	}
	for purpose, g := range got {
		if want, ok := p[purpose]; !ok || g != want || purpose >= fmt.Sprintf("p%03d", consent.MaxMessagePurposes) {
			t.Fatalf("kept %s = %v; want only the first %d purposes by name, with their values", purpose, g, consent.MaxMessagePurposes)
		}
	}
	roundTrip(t, v)
}

// The session does not alias the event's map, and sessions that keep the
// same consent share one map.
func TestConsentIsCopiedAndShared(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	e := pv("a", 0, home, consents(withdrawn))
	v := ws.NewVisitor(testAnon)
	applyAll(t, v, e)
	e.Consent["marketing"] = true
	if got := v.Sessions()[0].Consent; !reflect.DeepEqual(got, withdrawn) {
		t.Fatalf("consent %v after the caller changed its event's map, want %v", got, withdrawn)
	}
	w := ws.NewVisitor("anon-2")
	other := pv("b", 0, home, consents(withdrawn))
	other.AnonymousID = "anon-2"
	applyAll(t, w, other)
	a, b := v.Sessions()[0].Consent, w.Sessions()[0].Consent
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Fatal("two sessions with the same consent keep two maps, want one shared")
	}
	r := roundTrip(t, v)
	if reflect.ValueOf(r.open[0].Consent).UnsafePointer() != reflect.ValueOf(a).UnsafePointer() {
		t.Fatal("a restored session's consent is not the shared map")
	}
}
