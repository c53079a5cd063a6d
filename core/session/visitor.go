package session

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
)

// Errors of Visitor.Apply.
var (
	// ErrTooLate refuses an event that falls before the end (last event +
	// timeout) of a session this visitor has already closed: it would have
	// belonged to, or touched, a session whose state is final. The caller
	// counts these.
	ErrTooLate = errors.New("event too late: its session is closed")
	// ErrOtherVisitor refuses an event of another workspace or device.
	ErrOtherVisitor = errors.New("event of another visitor")
	// ErrInvalidEvent refuses an event without a message id or a time.
	ErrInvalidEvent = errors.New("invalid event")
)

// maxIDBytes is the collector's bound on ids; a longer one is cut.
const maxIDBytes = 255

// latest is the latest event time accepted: UnixNano overflows in 2262.
var latest = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// Visitor holds the open sessions of one device: a workspace and an
// anonymous id. The caller feeds it the device's events one at a time with
// Apply and closes finished sessions with Close; both report what changed.
//
// A Visitor is not safe for concurrent use: the worker owns each visitor
// from the one goroutine that owns its shard.
//
// A Visitor without open sessions (Len() == 0) may be dropped. Keeping it
// only lets it refuse, as ErrTooLate, events that arrive later than the
// grace for a session it has closed; a new Visitor puts them in a session
// of their own instead.
type Visitor struct {
	ws          *Workspace
	anonymousID string
	profileID   string
	// open holds the open sessions by start. Their spans [Start, LastEvent]
	// never overlap: an event inside a span joins that session.
	open []Session
	// horizon is the end (last event + timeout) of the latest session
	// closed, in Unix nanoseconds: earlier events are too late.
	horizon int64
}

// NewVisitor returns an empty visitor for the device anonymousID.
func (w *Workspace) NewVisitor(anonymousID string) *Visitor {
	return &Visitor{ws: w, anonymousID: anonymousID}
}

// AnonymousID returns the device (anonymous id) of the visitor.
func (v *Visitor) AnonymousID() string { return v.anonymousID }

// Workspace returns the workspace the visitor belongs to.
func (v *Visitor) Workspace() *Workspace { return v.ws }

// Len returns the number of open sessions.
func (v *Visitor) Len() int { return len(v.open) }

// Sessions returns copies of the open sessions, oldest first.
func (v *Visitor) Sessions() []Session {
	out := make([]Session, len(v.open))
	for i := range v.open {
		out[i] = v.open[i].copy()
	}
	return out
}

// source is where a visit came from: its campaign parameters, and for a
// page view the external referrer's host. A session's source is that of its
// earliest event that had campaign parameters or was a page view; a page
// view with neither makes the session direct.
type source struct {
	campaign Campaign
	refHost  string
}

// keyed reports whether s brings a visit: a campaign or a referrer.
func (s source) keyed() bool { return !s.campaign.IsZero() || s.refHost != "" }

// differs reports whether a visit from o starts a new session after a
// session from s: other campaign parameters, or, without any, a referrer
// from another site. Comparing sites rather than testing "any external
// referrer" keeps a single-page app's page views in one session: they all
// carry the referrer the visit landed with.
func (s source) differs(o source) bool {
	if !o.campaign.IsZero() {
		return !o.campaign.same(s.campaign)
	}
	if o.refHost == "" {
		return false
	}
	a, _ := siteOf(s.refHost)
	b, _ := siteOf(o.refHost)
	return a != b
}

func (s *Session) source() source { return source{campaign: s.Campaign, refHost: s.refHost} }

// visit is what Apply derives from an event once.
type visit struct {
	e    *Event
	m    mark
	src  source
	sets bool // the event can set a session's source
}

// Apply adds an event to the visitor's sessions and appends the changes
// (one for an accepted event) to out. Events may arrive late and out of
// order; an event lands:
//
//   - inside a session's span (Start ≤ time ≤ LastEvent): in that session,
//     whatever campaign or referrer it brings, since splitting a session
//     would need its events, which are not kept;
//   - before the end (last event + Timeout) of a session already closed:
//     nowhere, ErrTooLate;
//   - otherwise after the previous session, when the gap is under Timeout,
//     the session stays under MaxLength and the event does not bring a new
//     visit (other campaign parameters, or a referrer from another site
//     than the session's); or before the next session, on the same
//     conditions, as its new first event; in both, when it can, and the two
//     sessions merge (reported as Merged);
//   - else in a new session.
//
// So a gap of exactly Timeout starts a new session, and a session lasts
// less than MaxLength. The sessions depend on the events, not on the order
// they arrive in, with two exceptions: an event that would have split a
// session (a campaign change, an external referrer, a direct page view
// ahead of a campaign's) arriving after later events of its visitor joins
// the session instead; and MaxLength counts from the start when an event
// is applied, not from a start a late event moves backwards later.
func (v *Visitor) Apply(e *Event, out []Change) ([]Change, error) {
	if err := v.check(e); err != nil {
		return out, err
	}
	vis := visit{e: e, m: markOf(e), sets: e.Type == TypePage || !e.Campaign.IsZero()}
	// Cut as a session keeps them, so that comparing with a session's
	// source compares like with like.
	vis.src.campaign = e.Campaign.cut()
	if e.Type == TypePage {
		vis.src.refHost = cut(v.ws.externalReferrer(e.Referrer, e.URL), MaxTextBytes)
	}
	t := vis.m.at
	timeout, maxLen := int64(v.ws.rules.Timeout), int64(v.ws.rules.MaxLength)

	i := 0 // the first session starting after t
	for i < len(v.open) && v.open[i].Start.UnixNano() <= t {
		i++
	}
	if i > 0 && t <= v.open[i-1].LastEvent.UnixNano() {
		return v.join(i-1, vis, out), nil
	}
	if t < v.horizon {
		return out, ErrTooLate
	}
	var p, n *Session
	if i > 0 {
		p = &v.open[i-1]
	}
	if i < len(v.open) {
		n = &v.open[i]
	}
	joinP := p != nil && t-p.LastEvent.UnixNano() < timeout && t-p.Start.UnixNano() < maxLen &&
		!(vis.src.keyed() && p.sourceAt.set() && p.source().differs(vis.src))
	// Joining the next session makes the event its first: what the session
	// brought now follows the event, and splits from it if it differs.
	joinN := n != nil && n.Start.UnixNano()-t < timeout && n.LastEvent.UnixNano()-t < maxLen &&
		!(vis.sets && n.sourceAt.set() && n.source().keyed() && vis.src.differs(n.source()))
	if joinP && joinN && n.LastEvent.UnixNano()-p.Start.UnixNano() < maxLen {
		merged, set := p.source(), p.sourceAt.set()
		if !set && vis.sets {
			merged, set = vis.src, true
		}
		if !(set && n.sourceAt.set() && n.source().keyed() && merged.differs(n.source())) {
			return v.bridge(i-1, vis, out), nil
		}
	}
	switch {
	case joinP:
		return v.join(i-1, vis, out), nil
	case joinN:
		return v.join(i, vis, out), nil
	}
	v.open = slices.Insert(v.open, i, Session{
		WorkspaceID: v.ws.id,
		AnonymousID: v.anonymousID,
		ProfileID:   v.profileID,
		Channel:     channelOf(Campaign{}, ""),
	})
	v.add(&v.open[i], vis)
	return append(out, Change{Kind: Started, Session: v.open[i].copy()}), nil
}

func (v *Visitor) check(e *Event) error {
	switch {
	case e.WorkspaceID != v.ws.id || e.AnonymousID != v.anonymousID:
		return fmt.Errorf("%w: event %s of %s/%s applied to %s/%s",
			ErrOtherVisitor, e.MessageID, e.WorkspaceID, e.AnonymousID, v.ws.id, v.anonymousID)
	case e.MessageID == "":
		return fmt.Errorf("%w: no message id", ErrInvalidEvent)
	case e.Timestamp.Before(event.Earliest) || e.Timestamp.After(latest):
		return fmt.Errorf("%w: event %s: timestamp %v out of range", ErrInvalidEvent, e.MessageID, e.Timestamp)
	}
	return nil
}

// join adds the event to session i.
func (v *Visitor) join(i int, vis visit, out []Change) []Change {
	s := &v.open[i]
	old := s.ID
	v.add(s, vis)
	if s.ID != old {
		return append(out, Change{Kind: Merged, Session: s.copy(), Absorbed: old})
	}
	return append(out, Change{Kind: Updated, Session: s.copy()})
}

// bridge adds the event to session i and merges session i+1 into it.
func (v *Visitor) bridge(i int, vis visit, out []Change) []Change {
	s := &v.open[i]
	v.add(s, vis)
	absorbed := v.open[i+1].ID
	s.absorb(&v.open[i+1])
	v.open = slices.Delete(v.open, i+1, i+2)
	return append(out, Change{Kind: Merged, Session: v.open[i].copy(), Absorbed: absorbed})
}

// add folds one event into s. Every choice of "the earliest" or "the
// latest" event goes by mark, so the result does not depend on the order
// events arrive in.
func (v *Visitor) add(s *Session, vis visit) {
	e, m := vis.e, vis.m
	t := time.Unix(0, m.at).UTC() // no zone or monotonic reading to keep or compare
	s.Events++
	if s.startOrd == 0 || m.before(mark{at: s.Start.UnixNano(), ord: s.startOrd}) {
		s.Start, s.startOrd = t, m.ord
		s.ID = newID(v.ws.id, v.anonymousID, e.MessageID, t)
	}
	if s.Events == 1 || t.After(s.LastEvent) {
		s.LastEvent = t
	}
	switch e.Type {
	case TypePage, TypeScreen:
		s.PageViews++
		page := e.URL
		if page == "" {
			page = e.Name // screens have a name, not a URL
		}
		if !s.landingAt.set() || m.before(s.landingAt) {
			s.LandingPage, s.Referrer, s.landingAt = clip(page, MaxURLBytes), clip(e.Referrer, MaxURLBytes), m
		}
		if s.currentAt.before(m) {
			s.CurrentPage, s.currentAt = clip(page, MaxURLBytes), m
		}
	case TypeTrack:
		s.interactions++
		s.commerce(vis)
	}
	if vis.sets && (!s.sourceAt.set() || m.before(s.sourceAt)) {
		s.Campaign, s.refHost, s.sourceAt = vis.src.campaign.kept(), intern(vis.src.refHost), m
		s.Channel = channelOf(s.Campaign, s.refHost)
	}
	if e.UserID != "" && s.userAt.before(m) {
		s.UserID, s.userAt = clip(e.UserID, maxIDBytes), m
	}
	if e.Consent != nil && s.consentAt.before(m) {
		if !sameConsent(s.Consent, e.Consent) {
			s.Consent = keptConsent(e.Consent)
		}
		s.consentAt = m
	}
	// The device is parsed only for an event earlier than the one it came
	// from: once per session when events arrive in order.
	if !s.deviceAt.set() || m.before(s.deviceAt) {
		if d := deviceOf(e); d != (Device{}) {
			s.Device, s.deviceAt = d, m
		}
	}
	if e.Location != (Location{}) && (!s.locationAt.set() || m.before(s.locationAt)) {
		s.Location, s.locationAt = e.Location.kept(), m
	}
}

// commerce applies a track event's e-commerce meaning, if it has one.
func (s *Session) commerce(vis visit) {
	e := vis.e
	switch e.Name {
	case ProductAdded, "Added Product":
		for _, p := range e.Products {
			s.Cart.change(p, 1, vis.m)
		}
	case ProductRemoved, "Removed Product":
		for _, p := range e.Products {
			s.Cart.change(p, -1, vis.m)
		}
	case CartViewed, "Viewed Cart":
		if len(e.Products) > 0 { // without a list it says nothing of the cart
			s.Cart.replace(e.Products, vis.m)
		}
	case OrderCompleted, "Completed Order":
		s.Cart.replace(nil, vis.m)
		s.order(Order{
			ID:       clip(e.OrderID, maxIDBytes),
			Total:    e.Total,
			Currency: intern(e.Currency),
			Time:     time.Unix(0, vis.m.at).UTC(),
			at:       vis.m,
		})
	}
}

// order counts o unless an order with its id is listed already: an order
// counts once, with the total of its earliest event.
func (s *Session) order(o Order) {
	if o.ID != "" {
		for i := range s.Orders {
			if s.Orders[i].ID != o.ID {
				continue
			}
			if o.at.before(s.Orders[i].at) {
				s.revenue += toMicros(o.Total) - toMicros(s.Orders[i].Total)
				s.Orders[i] = o
				slices.SortFunc(s.Orders, func(a, b Order) int { return a.at.compare(b.at) })
			}
			return
		}
	}
	s.OrderCount++
	s.revenue += toMicros(o.Total)
	i, _ := slices.BinarySearchFunc(s.Orders, o.at, func(a Order, m mark) int { return a.at.compare(m) })
	if i < MaxOrders {
		s.Orders = slices.Insert(s.Orders, i, o)
		if len(s.Orders) > MaxOrders {
			s.Orders = s.Orders[:MaxOrders:MaxOrders]
		}
	}
}

// absorb merges o, the next session, into s.
func (s *Session) absorb(o *Session) {
	s.Events += o.Events
	s.PageViews += o.PageViews
	s.interactions += o.interactions
	if o.LastEvent.After(s.LastEvent) {
		s.LastEvent = o.LastEvent
	}
	if (mark{at: o.Start.UnixNano(), ord: o.startOrd}).before(mark{at: s.Start.UnixNano(), ord: s.startOrd}) {
		s.Start, s.startOrd, s.ID = o.Start, o.startOrd, o.ID
	}
	if o.landingAt.set() && (!s.landingAt.set() || o.landingAt.before(s.landingAt)) {
		s.LandingPage, s.Referrer, s.landingAt = o.LandingPage, o.Referrer, o.landingAt
	}
	if s.currentAt.before(o.currentAt) {
		s.CurrentPage, s.currentAt = o.CurrentPage, o.currentAt
	}
	if o.sourceAt.set() && (!s.sourceAt.set() || o.sourceAt.before(s.sourceAt)) {
		s.Campaign, s.refHost, s.sourceAt, s.Channel = o.Campaign, o.refHost, o.sourceAt, o.Channel
	}
	if s.userAt.before(o.userAt) {
		s.UserID, s.userAt = o.UserID, o.userAt
	}
	if s.consentAt.before(o.consentAt) {
		s.Consent, s.consentAt = o.Consent, o.consentAt
	}
	if o.deviceAt.set() && (!s.deviceAt.set() || o.deviceAt.before(s.deviceAt)) {
		s.Device, s.deviceAt = o.Device, o.deviceAt
	}
	if o.locationAt.set() && (!s.locationAt.set() || o.locationAt.before(s.locationAt)) {
		s.Location, s.locationAt = o.Location, o.locationAt
	}
	if s.ProfileID == "" {
		s.ProfileID = o.ProfileID
	}
	s.Cart.absorb(o.Cart)
	// Orders o counted but could not list are added as they are; listed
	// ones go through order, which drops duplicates.
	unlistedCount, unlistedRevenue := o.OrderCount, o.revenue
	for _, ord := range o.Orders {
		unlistedCount--
		unlistedRevenue -= toMicros(ord.Total)
		s.order(ord)
	}
	s.OrderCount += unlistedCount
	s.revenue += unlistedRevenue
}

func (m mark) compare(o mark) int {
	switch {
	case m.before(o):
		return -1
	case o.before(m):
		return 1
	}
	return 0
}

// Close closes the sessions whose last event is at least Timeout + Grace
// before now and appends a Closed change for each to out. A closed
// session's exit page is its current page, and it bounced if it had
// exactly one page view and no track event.
//
// now is a watermark the caller advances from a ticker. Wall-clock time is
// the one to use: the collector corrects event times to its own clock, so
// the two agree for live traffic, and wall-clock time keeps closing
// sessions when a shard goes quiet. A replay may pass the newest event
// time it has replayed instead.
func (v *Visitor) Close(now time.Time, out []Change) []Change {
	cut := now.UnixNano() - int64(v.ws.rules.Timeout+v.ws.rules.Grace)
	kept := v.open[:0]
	for _, s := range v.open {
		if s.LastEvent.UnixNano() > cut {
			kept = append(kept, s)
			continue
		}
		s.Closed = true
		s.ExitPage = s.CurrentPage
		s.Bounced = s.PageViews == 1 && s.interactions == 0
		v.horizon = max(v.horizon, s.LastEvent.UnixNano()+int64(v.ws.rules.Timeout))
		out = append(out, Change{Kind: Closed, Session: s}) // s is dropped: no copy needed
	}
	clear(v.open[len(kept):])
	v.open = kept
	if len(v.open) == 0 {
		v.open = nil // an idle visitor keeps no array
	}
	return out
}

// NextClose returns when Close will next have a session to close, and
// false when the visitor has no open session. The caller can keep its
// visitors in a queue by this time instead of visiting them all.
func (v *Visitor) NextClose() (time.Time, bool) {
	if len(v.open) == 0 {
		return time.Time{}, false
	}
	last := v.open[0].LastEvent
	for _, s := range v.open[1:] {
		if s.LastEvent.Before(last) {
			last = s.LastEvent
		}
	}
	return last.Add(v.ws.rules.Timeout + v.ws.rules.Grace), true
}

// SetProfileID sets the identity profile of the visitor's open sessions and
// of its sessions to come, appending an Updated change for each open
// session it changed.
func (v *Visitor) SetProfileID(id string, out []Change) []Change {
	v.profileID = clip(id, maxIDBytes)
	for i := range v.open {
		if v.open[i].ProfileID != v.profileID {
			v.open[i].ProfileID = v.profileID
			out = append(out, Change{Kind: Updated, Session: v.open[i].copy()})
		}
	}
	return out
}
