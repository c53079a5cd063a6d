//go:build wasip1

// Command cart_recovery is Eddy's cart-recovery app, a WASM module built
// with the eddywasm SDK: when a session closes with a non-empty cart and no
// order, it asks for one action carrying the cart, so that a webhook or a
// messaging tool can remind the visitor. It remembers the sessions it has
// handled (a bounded ring of recent ids, in the installation's state), so
// that a redelivered change asks for nothing more.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// config is the installation's configuration.
type config struct {
	// MinCartValue is the least cart value that calls for an action.
	MinCartValue float64 `json:"min_cart_value"`
	// ActionType is the type of the actions asked for.
	ActionType string `json:"action_type"`
	// Currency is the shop's currency, copied into the actions.
	Currency string `json:"currency"`
}

var (
	actionTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,62}$`)
	currencyPattern   = regexp.MustCompile(`^[A-Z]{3}$`)
)

// parseConfig decodes the configuration strictly and applies defaults.
func parseConfig(raw json.RawMessage) (config, error) {
	c := config{ActionType: "cart_abandoned"}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	switch {
	case c.MinCartValue < 0 || math.IsNaN(c.MinCartValue) || math.IsInf(c.MinCartValue, 0):
		return c, errors.New("config.min_cart_value: must be a number of at least 0")
	case !actionTypePattern.MatchString(c.ActionType):
		return c, errors.New("config.action_type: must match " + actionTypePattern.String())
	case c.Currency != "" && !currencyPattern.MatchString(c.Currency):
		return c, errors.New("config.currency: must be an ISO 4217 code such as EUR")
	}
	return c, nil
}

var cfg = config{ActionType: "cart_abandoned"}

// session holds the fields of a live session (as GET /v1/sessions/{id}
// shows it) the app reads.
type session struct {
	ID          string    `json:"id"`
	AnonymousID string    `json:"anonymous_id"`
	UserID      *string   `json:"user_id"`
	LastEventAt time.Time `json:"last_event_at"`
	Cart        *struct {
		Items []json.RawMessage `json:"items"`
		Value float64           `json:"value"`
	} `json:"cart"`
	OrdersCount int `json:"orders_count"`
}

// actionData is the data of an action.
type actionData struct {
	SessionID string            `json:"session_id"`
	Items     []json.RawMessage `json:"items"`
	Value     float64           `json:"value"`
	Currency  string            `json:"currency,omitempty"`
	EndedAt   time.Time         `json:"ended_at"`
}

// handledKey is the state key of the ring of handled session ids.
const handledKey = "handled_sessions"

// ringSize bounds the ring: 500 UUIDs are about 20 KB, well under the
// 64 KiB a state value may hold, and far more than the changes a
// redelivery repeats.
const ringSize = 500

// ring is the recently handled session ids, oldest first.
type ring []string

func loadRing() ring {
	var r ring
	if b, ok := eddywasm.StateGet(handledKey); ok {
		_ = json.Unmarshal(b, &r) // a damaged ring starts afresh
	}
	return r
}

func (r ring) has(id string) bool {
	for _, h := range r {
		if h == id {
			return true
		}
	}
	return false
}

// save keeps the newest ids that fit the limits.
func (r ring) save() error {
	if len(r) > ringSize {
		r = r[len(r)-ringSize:]
	}
	for {
		b, _ := json.Marshal(r)
		if len(b) <= eddywasm.MaxStateValueBytes || len(r) == 0 {
			return eddywasm.StateSet(handledKey, b)
		}
		r = r[max(1, len(r)/4):]
	}
}

func onSessions(changes []eddywasm.SessionChange) []eddywasm.Action {
	var actions []eddywasm.Action
	var handled ring
	loaded := false
	for _, c := range changes {
		if c.Kind != "closed" {
			continue
		}
		var s session
		if err := json.Unmarshal(c.Session, &s); err != nil || s.ID == "" {
			continue // not a session: nothing to recover
		}
		if s.Cart == nil || len(s.Cart.Items) == 0 || s.OrdersCount > 0 || s.Cart.Value < cfg.MinCartValue {
			continue
		}
		if !loaded {
			handled, loaded = loadRing(), true
		}
		if handled.has(s.ID) {
			continue
		}
		handled = append(handled, s.ID)
		data, err := json.Marshal(actionData{SessionID: s.ID, Items: s.Cart.Items, Value: s.Cart.Value,
			Currency: cfg.Currency, EndedAt: s.LastEventAt})
		if err != nil {
			continue
		}
		a := eddywasm.Action{Type: cfg.ActionType, AnonymousID: s.AnonymousID, Data: data}
		if s.UserID != nil {
			a.UserID = *s.UserID
		}
		actions = append(actions, a)
	}
	if len(actions) > 0 {
		// Without state (no permission, or storage down) the actions still
		// go: a duplicate reminder beats a lost one.
		_ = handled.save()
	}
	return actions
}

func init() {
	eddywasm.Init(func(raw json.RawMessage) error {
		c, err := parseConfig(raw)
		if err != nil {
			return err
		}
		cfg = c
		return nil
	})
	eddywasm.OnSessions(onSessions)
}

func main() {}
