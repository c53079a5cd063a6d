package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// A Decision is consent recorded outside the event stream, for one
// identifier of a person: set or withdrawn through the API, taken from a
// consent update the visitor sent (UpdateEvent) to supersede an earlier
// decision, or a deletion (the purpose All, withdrawn: the person is
// suppressed). Decisions make withdrawal stick: a client that keeps
// sending an old consent in its events cannot override them.
type Decision struct {
	// Purpose is the purpose decided, or All for a deletion.
	Purpose string
	Granted bool
	At      time.Time
	// Source is where it came from: SourceAPI, SourceEvent or
	// SourceDeletion.
	Source string
}

// All is the purpose of a deletion's decision: every purpose withdrawn.
const All = "*"

// Where decisions come from.
const (
	SourceAPI      = "api"
	SourceEvent    = "event"
	SourceDeletion = "deletion"
)

// UpdateEvent is the name of the track event a visitor's consent manager
// sends when the visitor changes their choice (Segment's consent
// management sends it; so does Eddy's tracker). Its consent is the
// visitor's own fresh decision: it supersedes earlier decisions, where
// the consent other events carry may be stale.
const UpdateEvent = "Segment Consent Preference Updated"

// Applied is what decisions make of an event's consent.
type Applied struct {
	// Prefs and Present are the event's effective consent.
	Prefs   Preferences
	Present bool
	// Changed tells whether they differ from what the event carried.
	Changed bool
	// Suppressed is true when the person was deleted and has not
	// granted every required purpose again since, in a consent update.
	Suppressed bool
	// Record are the purposes a consent update decides anew, to record
	// (only where a decision already exists, which it supersedes).
	Record Preferences
}

// Apply combines an event's consent (prefs, present, as Parse reads it)
// with the decisions on its identifiers, at time at (when Eddy received
// the event). update says whether the event is a consent update
// (UpdateEvent). For each purpose, the latest decision (a deletion counts
// for every purpose) rules:
//   - withdrawn: the purpose is withdrawn, whatever the event says, unless
//     the event is a consent update received after the decision, which
//     then decides;
//   - granted: the event's own value holds when it states one (a visitor
//     who refuses is never overridden), else the purpose is granted, so
//     that server-side events of a person who consented through the API
//     are processed.
//
// required are the purposes processing needs, for Suppressed.
func Apply(prefs Preferences, present bool, decisions []Decision, update bool, at time.Time, required []string) Applied {
	out := Applied{Prefs: prefs, Present: present}
	if len(decisions) == 0 {
		return out
	}
	latest := map[string]Decision{}
	var deleted *Decision
	for i, d := range decisions {
		if d.Purpose == All {
			if deleted == nil || d.At.After(deleted.At) {
				deleted = &decisions[i]
			}
			continue
		}
		if cur, ok := latest[d.Purpose]; !ok || d.At.After(cur.At) {
			latest[d.Purpose] = d
		}
	}
	eff := make(Preferences, len(prefs)+len(latest))
	for p, g := range prefs {
		eff[p] = g
	}
	decide := func(purpose string, d Decision) {
		stated, says := prefs[purpose]
		switch {
		case update && says && at.After(d.At):
			if stated != d.Granted {
				if out.Record == nil {
					out.Record = Preferences{}
				}
				out.Record[purpose] = stated
			}
		case !d.Granted:
			eff[purpose] = false
		case !says:
			eff[purpose] = true
		}
	}
	for purpose, d := range latest {
		if deleted != nil && deleted.At.After(d.At) {
			continue // the deletion is newer
		}
		decide(purpose, d)
	}
	if deleted != nil {
		for purpose := range prefs {
			if d, ok := latest[purpose]; ok && d.At.After(deleted.At) {
				continue
			}
			decide(purpose, *deleted)
		}
		for _, purpose := range required {
			if purpose == Necessary {
				continue
			}
			d, ok := latest[purpose]
			regranted := ok && d.Granted && d.At.After(deleted.At)
			if update && at.After(deleted.At) && prefs[purpose] {
				regranted = true
			}
			if !regranted {
				out.Suppressed = true
			}
		}
	}
	out.Present = present || len(latest) > 0
	out.Changed = out.Present != present || !equalPrefs(eff, prefs)
	out.Prefs = eff
	return out
}

func equalPrefs(a, b Preferences) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// SetPreferences returns the message payload with its
// context.consent.categoryPreferences replaced by prefs (the message's
// context wins over the batch's, so this is what every reader after the
// gate sees). Other keys are kept as they are.
func SetPreferences(payload []byte, prefs Preferences) ([]byte, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(payload, &msg); err != nil {
		return nil, fmt.Errorf("set consent: message: %w", err)
	}
	ctx, err := object(msg["context"], "context")
	if err != nil {
		return nil, err
	}
	obj, err := object(ctx["consent"], "context.consent")
	if err != nil {
		return nil, err
	}
	if obj["categoryPreferences"], err = json.Marshal(prefs); err != nil {
		return nil, fmt.Errorf("set consent: %w", err)
	}
	if ctx["consent"], err = json.Marshal(obj); err != nil {
		return nil, fmt.Errorf("set consent: %w", err)
	}
	if msg["context"], err = json.Marshal(ctx); err != nil {
		return nil, fmt.Errorf("set consent: %w", err)
	}
	return json.Marshal(msg)
}

// object decodes an optional JSON object (absent or null: empty).
func object(raw json.RawMessage, field string) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return m, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("set consent: %s is not an object", field)
	}
	return m, nil
}

// Update is a visitor's consent update to record as decisions: the
// purposes it decides, on the hashes (IdentifierHash) of the identifiers
// it carried, at the time Eddy received it.
type Update struct {
	Hashes [][32]byte
	Prefs  Preferences
	At     time.Time
}

// IdentifierHash is the hash decisions and suppressions keep of a
// person's identifier: SHA-256 of workspace id, kind (anonymous_id,
// user_id or email) and value joined by ':'.
func IdentifierHash(workspaceID, kind, value string) [32]byte {
	return sha256.Sum256([]byte(workspaceID + ":" + kind + ":" + value))
}
