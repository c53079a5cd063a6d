package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// Snapshots: a visitor's whole state, bookkeeping included, as bytes, so
// that a worker taking over a shard rebuilds exactly the visitors its dead
// owner had at a checkpoint (doc.go, Checkpoints). For any visitor v and
// any calls that follow (Apply, Close, SetProfileID, NextClose, Sessions),
// the visitor restored from v's snapshot answers exactly as v does.
//
// # Format
//
// A visitor snapshot (Visitor.AppendBinary) is
//
//	format byte (2) · workspace id · body
//
// and a shard snapshot (AppendVisitors) is
//
//	format byte (0x82) · n · n workspace ids · m · m × (workspace index · body length · body)
//
// with a body
//
//	anonymous id · profile id · horizon · n · n sessions
//
// A session ends with its consent: the mark of the event it came from, and
// when that is set, the number of purposes and each purpose in increasing
// byte order followed by a byte, 1 granted or 0 not (so an empty consent
// and no consent differ). Formats 1 and 0x81, written by builds before
// sessions kept consent, are the same without it; they are still read, as
// sessions without consent.
//
// Integers are varints (encoding/binary: Uvarint for counts and lengths,
// zig-zag Varint for signed values), strings a length and their bytes, ids
// their 16 raw bytes, and the hashes that order events (a mark's ord) 8
// bytes little endian. Times are Unix nanoseconds, since Apply compares
// nanoseconds: a session's start absolute, its last event as the time
// since its start, every other mark (time and hash of the event that set a
// field) as 0 (unset), 1 (the session's start event) or 2 followed by its
// time relative to the start and its hash. Groups of strings that are
// often empty (campaign, device, location, channel, product) start with a
// byte with one bit per non-empty string; channel groups and device types
// are one byte naming a known value, or 0 followed by the string. Floats
// (prices, order totals) are their IEEE 754 bits, so NaN and -0 survive.
//
// Decoding accepts exactly what encoding writes: one encoding per state,
// minimal varints, no trailing byte. It checks the caps the engine keeps
// (string lengths, MaxOrders, MaxCartItems, MaxCartChanges,
// consent.MaxMessagePurposes and valid purpose names) and the order of the
// sessions, and never trusts a count further than the bytes left.
// The format is versioned by its first byte: a change of layout or of the
// meaning of a field (including the order of channelGroups and
// deviceTypes) needs a new format byte, and decoding the old one for as
// long as checkpoints in it may exist.
const (
	visitorFormat = 2    // Visitor.AppendBinary
	shardFormat   = 0x82 // AppendVisitors
	// The formats before sessions kept consent, read only.
	visitorFormatNoConsent = 1
	shardFormatNoConsent   = 0x81
)

// ErrInvalidSnapshot refuses a snapshot that is not one: an unknown format
// byte, truncated or trailing data, a value beyond the engine's caps, or a
// snapshot of another workspace.
var ErrInvalidSnapshot = errors.New("invalid visitor snapshot")

// channelGroups and deviceTypes are coded by their index + 1; never
// reorder them (append only).
var (
	channelGroups = [...]string{string(Direct), string(OrganicSearch), string(PaidSearch), string(OrganicSocial),
		string(PaidSocial), string(Email), string(Referral), string(Affiliates), string(Display), string(Other)}
	deviceTypes = [...]string{string(Desktop), string(Mobile), string(Tablet)}
)

// Session flags.
const (
	flagBounced          = 1 << iota
	flagClosed           // never set on an open session, kept for completeness
	flagCurrentIsLanding // CurrentPage == LandingPage, not written again
	flagExitPage         // ExitPage follows
	flagsAll             = 1<<iota - 1
)

// Product flags: which strings follow, and whether the price does.
const (
	itemProductID = 1 << iota
	itemSKU
	itemName
	itemPrice
)

// Mark tags.
const (
	markUnset = iota
	markStart
	markOther
)

// minSessionBytes is less than the smallest session encoding (16 bytes of
// id and 8 of hash, at least 1 for each of its other fields), and
// minBodyBytes the smallest body: the bounds on counts read.
const (
	minSessionBytes = 40
	minBodyBytes    = 4
)

// AppendBinary appends the visitor's snapshot to b (encoding.BinaryAppender):
// its open sessions with all their bookkeeping, its profile id and its
// closed-session horizon (what ErrTooLate compares with). Workspace.
// RestoreVisitor reads it back. A typical visitor with one session takes
// 400 to 600 bytes, mostly its URLs; no allocation beyond growing b.
//
// It fails only on a state that breaks the engine's own invariants (a bug),
// and then returns b unchanged: whatever it writes RestoreVisitor reads.
func (v *Visitor) AppendBinary(b []byte) ([]byte, error) {
	if err := v.validate(); err != nil {
		return b, fmt.Errorf("snapshot of visitor %s of workspace %s: %w", v.anonymousID, v.ws.id, err)
	}
	b = append(b, visitorFormat)
	b = appendString(b, v.ws.id)
	return v.appendBody(b, true), nil
}

// RestoreVisitor returns the visitor whose snapshot (Visitor.AppendBinary)
// data holds. The snapshot must be of workspace w (its id; w's rules may
// have changed since, the sessions then go on under the new ones). Errors
// wrap ErrInvalidSnapshot and say what is wrong at which byte; data is
// not kept.
func (w *Workspace) RestoreVisitor(data []byte) (*Visitor, error) {
	d := decoder{b: data, size: len(data)}
	d.format(false)
	if id := d.raw(); d.err == nil && string(id) != w.id {
		return nil, fmt.Errorf("%w: a visitor of workspace %q, restored into workspace %q", ErrInvalidSnapshot, id, w.id)
	}
	v := d.visitor(w)
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}

// AppendVisitors appends a shard snapshot of vs to b: each visitor as
// AppendBinary writes it, with the workspace ids written once. It fails,
// returning b unchanged, on a nil visitor or when AppendBinary would.
// RestoreVisitors reads it back in the same order. The caller keeps the
// visitors that matter: those with open sessions, and those without that
// it keeps to refuse late events (see Visitor); a visitor left out is
// restored as absent, that is, as a new one if its device comes back.
func AppendVisitors(b []byte, vs []*Visitor) ([]byte, error) {
	b0 := len(b)
	index := make(map[*Workspace]int)
	var ids []string
	byID := make(map[string]int)
	for i, v := range vs {
		if v == nil {
			return b, fmt.Errorf("shard snapshot: visitor %d is nil", i)
		}
		if _, ok := index[v.ws]; ok {
			continue
		}
		k, ok := byID[v.ws.id] // two Workspaces of one id: rules changed
		if !ok {
			k = len(ids)
			byID[v.ws.id] = k
			ids = append(ids, v.ws.id)
		}
		index[v.ws] = k
	}
	b = append(b, shardFormat)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendString(b, id)
	}
	b = binary.AppendUvarint(b, uint64(len(vs)))
	var body []byte
	for i, v := range vs {
		if err := v.validate(); err != nil {
			return b[:b0], fmt.Errorf("shard snapshot: visitor %d (%s of workspace %s): %w", i, v.anonymousID, v.ws.id, err)
		}
		body = v.appendBody(body[:0], true)
		b = binary.AppendUvarint(b, uint64(index[v.ws]))
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	return b, nil
}

// RestoreVisitors returns the visitors of a shard snapshot (AppendVisitors),
// in the order they were written. workspace returns the current Workspace
// of an id, once per id: an error stops the restore and is returned
// wrapped; a nil Workspace without error skips that workspace's visitors
// (a deleted workspace). Errors of the data wrap ErrInvalidSnapshot; two
// visitors of one device and workspace are an error too.
func RestoreVisitors(data []byte, workspace func(id string) (*Workspace, error)) ([]*Visitor, error) {
	d := decoder{b: data, size: len(data)}
	d.format(true)
	wss := make([]*Workspace, d.countIn("workspaces", 1))
	listed := make(map[string]bool, len(wss))
	for i := range wss {
		id := string(d.raw())
		if d.err != nil {
			break
		}
		if listed[id] {
			d.fail("workspace %q listed twice", id)
			break
		}
		listed[id] = true
		ws, err := workspace(id)
		if err != nil {
			return nil, fmt.Errorf("restore visitors: workspace %s: %w", id, err)
		}
		if ws != nil && ws.id != id {
			return nil, fmt.Errorf("restore visitors: asked for workspace %s, got %s", id, ws.id)
		}
		wss[i] = ws
	}
	n := d.countIn("visitors", 2+minBodyBytes)
	vs := make([]*Visitor, 0, n)
	type key struct{ ws, anon string }
	seen := make(map[key]bool, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.uvarint()
		if d.err == nil && k >= uint64(len(wss)) {
			d.fail("visitor %d: workspace index %d of %d", i, k, len(wss))
		}
		at := d.offset()
		body := d.raw()
		if d.err != nil || wss[k] == nil {
			continue
		}
		sub := decoder{b: body, size: len(body), base: at, consent: d.consent}
		v := sub.visitor(wss[k])
		sub.end()
		if sub.err != nil {
			return nil, fmt.Errorf("visitor %d: %w", i, sub.err)
		}
		if seen[key{v.ws.id, v.anonymousID}] {
			d.fail("visitor %d: %s of workspace %s twice", i, v.anonymousID, v.ws.id)
			break
		}
		seen[key{v.ws.id, v.anonymousID}] = true
		vs = append(vs, v)
	}
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return vs, nil
}

// validate checks what decoding checks, so that every snapshot written can
// be read: caps on what a session keeps (clip, intern and the Max*
// constants enforce them), counts not negative, sessions in order.
func (v *Visitor) validate() error {
	if len(v.profileID) > maxIDBytes {
		return fmt.Errorf("profile id of %d bytes, more than %d", len(v.profileID), maxIDBytes)
	}
	minT, maxT := event.Earliest.UnixNano(), latest.UnixNano()
	var prev int64
	for i := range v.open {
		s := &v.open[i]
		start, last := s.Start.UnixNano(), s.LastEvent.UnixNano()
		switch {
		case start < minT || last < start || last > maxT:
			return fmt.Errorf("session %d: start %d, last event %d: want %d ≤ start ≤ last event ≤ %d",
				i, start, last, minT, maxT)
		case i > 0 && start <= prev:
			return fmt.Errorf("session %d starts at %d, not after the previous one's last event %d", i, start, prev)
		}
		prev = last
		if err := s.validate(); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
	}
	return nil
}

// sessionCaps are the caps on a session's strings, in the order
// Session.validate lists their lengths. Channel values come from the
// campaign or from the lower-cased referrer host, which lower-casing may
// lengthen: a looser cap.
var sessionCaps = [...]struct {
	name string
	max  int
}{
	{"user id", maxIDBytes}, {"profile id", maxIDBytes}, {"landing page", MaxURLBytes}, {"current page", MaxURLBytes},
	{"exit page", MaxURLBytes}, {"referrer", MaxURLBytes},
	{"utm_source", MaxTextBytes}, {"utm_medium", MaxTextBytes}, {"utm_campaign", MaxTextBytes}, {"utm_term", MaxTextBytes},
	{"utm_content", MaxTextBytes}, {"click id parameter", MaxTextBytes}, {"click id", MaxTextBytes},
	{"referrer host", MaxTextBytes}, {"channel group", MaxURLBytes}, {"channel source", MaxURLBytes},
	{"channel medium", MaxURLBytes}, {"channel campaign", MaxURLBytes},
	{"device type", MaxTextBytes}, {"os", MaxTextBytes}, {"browser", MaxTextBytes},
	{"country", MaxTextBytes}, {"city", MaxTextBytes}, {"ip", MaxTextBytes},
}

func (s *Session) validate() error {
	if s.Events < 0 || s.PageViews < 0 || s.interactions < 0 || s.OrderCount < 0 {
		return fmt.Errorf("negative count: %d events, %d page views, %d interactions, %d orders",
			s.Events, s.PageViews, s.interactions, s.OrderCount)
	}
	switch {
	case len(s.Orders) > MaxOrders:
		return fmt.Errorf("%d orders listed, more than %d", len(s.Orders), MaxOrders)
	case len(s.Cart.base) > MaxCartItems:
		return fmt.Errorf("%d cart items, more than %d", len(s.Cart.base), MaxCartItems)
	case len(s.Cart.changes) > MaxCartChanges:
		return fmt.Errorf("%d cart changes, more than %d", len(s.Cart.changes), MaxCartChanges)
	}
	c, ch, d, l := &s.Campaign, &s.Channel, &s.Device, &s.Location
	lens := [len(sessionCaps)]int{
		len(s.UserID), len(s.ProfileID), len(s.LandingPage), len(s.CurrentPage), len(s.ExitPage), len(s.Referrer),
		len(c.Source), len(c.Medium), len(c.Name), len(c.Term), len(c.Content), len(c.ClickIDParam), len(c.ClickID),
		len(s.refHost), len(ch.Group), len(ch.Source), len(ch.Medium), len(ch.Campaign),
		len(d.Type), len(d.OS), len(d.Browser), len(l.Country), len(l.City), len(l.IP),
	}
	for i, n := range lens {
		if n > sessionCaps[i].max {
			return fmt.Errorf("%s of %d bytes, more than %d", sessionCaps[i].name, n, sessionCaps[i].max)
		}
	}
	for i := range s.Cart.base {
		if err := s.Cart.base[i].validate(); err != nil {
			return err
		}
	}
	for i := range s.Cart.changes {
		if err := s.Cart.changes[i].item.validate(); err != nil {
			return err
		}
	}
	for i := range s.Orders {
		if o := &s.Orders[i]; len(o.ID) > maxIDBytes || len(o.Currency) > MaxTextBytes {
			return fmt.Errorf("order id of %d bytes or currency of %d, more than %d or %d",
				len(o.ID), len(o.Currency), maxIDBytes, MaxTextBytes)
		}
	}
	return s.validateConsent()
}

// validateConsent checks what keptConsent ensures: a consent exactly when
// its mark is set, of at most consent.MaxMessagePurposes valid purposes.
func (s *Session) validateConsent() error {
	switch {
	case s.consentAt.set() != (s.Consent != nil):
		return fmt.Errorf("consent set: %v, its mark set: %v", s.Consent != nil, s.consentAt.set())
	case len(s.Consent) > consent.MaxMessagePurposes:
		return fmt.Errorf("consent of %d purposes, more than %d", len(s.Consent), consent.MaxMessagePurposes)
	}
	for purpose := range s.Consent {
		if !consent.ValidPurpose(purpose) {
			return fmt.Errorf("consent purpose of %d bytes not valid", len(purpose))
		}
	}
	return nil
}

func (it *Item) validate() error {
	if len(it.ProductID) > MaxTextBytes || len(it.SKU) > MaxTextBytes || len(it.Name) > MaxTextBytes {
		return fmt.Errorf("cart item %q: a product id, sku or name of more than %d bytes", it.key(), MaxTextBytes)
	}
	return nil
}

// Encoding.

// appendBody writes the visitor's body; withConsent is false only for the
// tests' snapshots in the formats before consent.
func (v *Visitor) appendBody(b []byte, withConsent bool) []byte {
	b = appendString(b, v.anonymousID)
	b = appendString(b, v.profileID)
	b = binary.AppendVarint(b, v.horizon)
	b = binary.AppendUvarint(b, uint64(len(v.open)))
	for i := range v.open {
		b = appendSession(b, &v.open[i], withConsent)
	}
	return b
}

func appendSession(b []byte, s *Session, withConsent bool) []byte {
	start := s.Start.UnixNano()
	base := mark{at: start, ord: s.startOrd}
	b = append(b, s.ID[:]...)
	b = binary.AppendVarint(b, start)
	b = binary.LittleEndian.AppendUint64(b, s.startOrd)
	b = binary.AppendUvarint(b, uint64(s.LastEvent.UnixNano()-start))
	var flags byte
	if s.Bounced {
		flags |= flagBounced
	}
	if s.Closed {
		flags |= flagClosed
	}
	if s.CurrentPage == s.LandingPage {
		flags |= flagCurrentIsLanding
	}
	if s.ExitPage != "" {
		flags |= flagExitPage
	}
	b = append(b, flags)
	for _, n := range [...]int{s.Events, s.PageViews, s.interactions, s.OrderCount} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendVarint(b, s.revenue)
	b = appendString(b, s.UserID)
	b = appendString(b, s.ProfileID)
	b = appendString(b, s.LandingPage)
	if flags&flagCurrentIsLanding == 0 {
		b = appendString(b, s.CurrentPage)
	}
	if flags&flagExitPage != 0 {
		b = appendString(b, s.ExitPage)
	}
	b = appendString(b, s.Referrer)
	c := &s.Campaign
	b = appendStrings(b, c.Source, c.Medium, c.Name, c.Term, c.Content, c.ClickIDParam, c.ClickID)
	b = appendString(b, s.refHost)
	b = appendEnum(b, string(s.Channel.Group), channelGroups[:])
	b = appendStrings(b, s.Channel.Source, s.Channel.Medium, s.Channel.Campaign)
	b = appendEnum(b, string(s.Device.Type), deviceTypes[:])
	b = appendStrings(b, s.Device.OS, s.Device.Browser, s.Location.Country, s.Location.City, s.Location.IP)
	for _, m := range [...]mark{s.landingAt, s.currentAt, s.sourceAt, s.userAt, s.deviceAt, s.locationAt, s.Cart.reset} {
		b = appendMark(b, m, base)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Cart.base)))
	for i := range s.Cart.base {
		b = appendItem(b, &s.Cart.base[i])
	}
	b = binary.AppendUvarint(b, uint64(len(s.Cart.changes)))
	for i := range s.Cart.changes {
		ch := &s.Cart.changes[i]
		b = appendItem(b, &ch.item)
		b = appendMark(b, ch.at, base)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Orders)))
	for i := range s.Orders {
		o := &s.Orders[i]
		b = appendString(b, o.ID)
		b = appendString(b, o.Currency)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Total))
		b = appendMark(b, o.at, base)
		b = binary.AppendVarint(b, o.Time.UnixNano()-o.at.at) // 0: the order's time is its event's
	}
	if withConsent {
		b = appendConsent(b, s, base)
	}
	return b
}

// appendConsent writes the session's consent, its purposes sorted so that a
// consent has one encoding. validate has checked there are at most
// consent.MaxMessagePurposes: sorting them does not allocate.
func appendConsent(b []byte, s *Session, base mark) []byte {
	b = appendMark(b, s.consentAt, base)
	if !s.consentAt.set() {
		return b
	}
	var buf [consent.MaxMessagePurposes]string
	purposes := buf[:0]
	for purpose := range s.Consent {
		purposes = append(purposes, purpose)
	}
	slices.Sort(purposes)
	b = binary.AppendUvarint(b, uint64(len(purposes)))
	for _, purpose := range purposes {
		b = appendString(b, purpose)
		if s.Consent[purpose] {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendStrings writes up to 8 strings, most often empty: a byte with a
// bit per non-empty one, then those.
func appendStrings(b []byte, ss ...string) []byte {
	var bits byte
	for i, s := range ss {
		if s != "" {
			bits |= 1 << i
		}
	}
	b = append(b, bits)
	for _, s := range ss {
		if s != "" {
			b = appendString(b, s)
		}
	}
	return b
}

// appendEnum writes s as its index + 1 in known, or 0 and s.
func appendEnum(b []byte, s string, known []string) []byte {
	for i, k := range known {
		if s == k {
			return append(b, byte(i+1))
		}
	}
	return appendString(append(b, 0), s)
}

// appendMark writes m relative to base, the session's start event.
func appendMark(b []byte, m, base mark) []byte {
	switch m {
	case mark{}:
		return append(b, markUnset)
	case base:
		return append(b, markStart)
	}
	b = append(b, markOther)
	b = binary.AppendVarint(b, m.at-base.at) // wraps both ways: exact for any m
	return binary.LittleEndian.AppendUint64(b, m.ord)
}

func appendItem(b []byte, it *Item) []byte {
	var bits byte
	if it.ProductID != "" {
		bits |= itemProductID
	}
	if it.SKU != "" {
		bits |= itemSKU
	}
	if it.Name != "" {
		bits |= itemName
	}
	price := math.Float64bits(it.Price)
	if price != 0 {
		bits |= itemPrice
	}
	b = append(b, bits)
	for _, s := range [...]string{it.ProductID, it.SKU, it.Name} {
		if s != "" {
			b = appendString(b, s)
		}
	}
	if price != 0 {
		b = binary.LittleEndian.AppendUint64(b, price)
	}
	return binary.AppendVarint(b, int64(it.Quantity))
}

// Decoding.

// decoder reads a snapshot. The first error sticks: every later read
// returns a zero value, so that a decoding function checks d.err once at
// its end (and before loops, which counts bound anyway).
type decoder struct {
	b       []byte
	size    int  // of the data, for offsets
	base    int  // offset of the data in the enclosing snapshot
	consent bool // sessions end with their consent (format 2 on)
	err     error
}

func (d *decoder) offset() int { return d.base + d.size - len(d.b) }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrInvalidSnapshot, d.offset(), fmt.Sprintf(format, args...))
	}
	d.b = nil
}

// format reads the format byte of a shard snapshot or a visitor's: the
// current format or the one before consent, which sets d.consent.
func (d *decoder) format(shard bool) {
	want, old := byte(visitorFormat), byte(visitorFormatNoConsent)
	if shard {
		want, old = shardFormat, shardFormatNoConsent
	}
	switch f := d.byte(); {
	case d.err != nil:
	case f == want || f == old:
		d.consent = f == want
	case f == visitorFormat || f == visitorFormatNoConsent || f == shardFormat || f == shardFormatNoConsent:
		d.fail("a %s snapshot, not a %s one", formatName(f), formatName(want))
	default:
		d.fail("unknown format %#x: this build reads %s snapshots in formats %#x and %#x", f, formatName(want), old, want)
	}
}

func formatName(f byte) string {
	if f == shardFormat || f == shardFormatNoConsent {
		return "shard"
	}
	return "visitor"
}

// end fails unless all the data was read.
func (d *decoder) end() {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes left over", len(d.b))
	}
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) fixed(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) uint64() uint64 { return binary.LittleEndian.Uint64(d.fixed(8)) }

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("truncated")
		return 0
	case n < 0:
		d.fail("varint overflows 64 bits")
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("varint not minimal")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// int reads a non-negative int.
func (d *decoder) int(what string) int {
	x := d.uvarint()
	if x > math.MaxInt {
		d.fail("%s %d overflows an int", what, x)
		return 0
	}
	return int(x)
}

// count reads a count of at most limit.
func (d *decoder) count(what string, limit int) int {
	n := d.uvarint()
	if n > uint64(limit) {
		d.fail("%d %s, more than %d", n, what, limit)
		return 0
	}
	return int(n)
}

// countIn reads a count of things of at least minBytes each, which the
// bytes left must hold: a count read never makes a large allocation.
func (d *decoder) countIn(what string, minBytes int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minBytes) {
		d.fail("%d %s, more than the %d bytes left can hold", n, what, len(d.b))
		return 0
	}
	return int(n)
}

// raw reads a string's bytes, without copying them.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes, %d left", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// str reads a string the engine copies (clip).
func (d *decoder) str() string { return string(d.raw()) }

// shared reads a string the engine interns.
func (d *decoder) shared() string { return internBytes(d.raw()) }

// internBytes is intern without cutting (a longer value is copied, not
// shared) and without allocating for a value interned already.
func internBytes(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if len(p) > MaxTextBytes {
		return string(p)
	}
	interned.RLock()
	v, ok := interned.m[string(p)]
	interned.RUnlock()
	if ok {
		return v
	}
	return intern(string(p))
}

// bits reads the byte of appendStrings or appendItem, of n bits.
func (d *decoder) bits(n int) byte {
	bits := d.byte()
	if bits>>n != 0 {
		d.fail("unknown field bits %#x", bits)
		return 0
	}
	return bits
}

// opt reads string i of appendStrings, if bits says it is there: shared
// (interned) or not, as the engine keeps it.
func (d *decoder) opt(bits byte, i int, shared bool) string {
	if bits&(1<<i) == 0 {
		return ""
	}
	p := d.raw()
	if d.err == nil && len(p) == 0 {
		d.fail("empty string flagged as set")
	}
	if shared {
		return internBytes(p)
	}
	return string(p)
}

func (d *decoder) enum(known []string) string {
	k := d.byte()
	switch {
	case d.err != nil:
		return ""
	case k == 0:
		s := d.raw()
		for _, kn := range known {
			if string(s) == kn {
				d.fail("known value %q written in full", s)
			}
		}
		return internBytes(s)
	case int(k) > len(known):
		d.fail("unknown value %d", k)
		return ""
	}
	return known[k-1]
}

func (d *decoder) mark(base mark) mark {
	switch tag := d.byte(); tag {
	case markUnset:
		return mark{}
	case markStart:
		return base
	case markOther:
		at := base.at + d.varint()
		m := mark{at: at, ord: d.uint64()}
		if d.err == nil && (m == mark{} || m == base) {
			d.fail("mark %v written in full", m)
		}
		return m
	default:
		d.fail("unknown mark tag %d", tag)
		return mark{}
	}
}

func (d *decoder) visitor(w *Workspace) *Visitor {
	v := &Visitor{ws: w, anonymousID: d.str(), profileID: d.str()}
	v.horizon = d.varint()
	if n := d.countIn("open sessions", minSessionBytes); n > 0 {
		v.open = make([]Session, n)
	}
	for i := range v.open {
		if d.err != nil {
			break
		}
		d.session(v, &v.open[i])
	}
	if d.err != nil {
		return nil
	}
	if err := v.validate(); err != nil {
		d.fail("%v", err)
		return nil
	}
	return v
}

func (d *decoder) session(v *Visitor, s *Session) {
	s.WorkspaceID, s.AnonymousID = v.ws.id, v.anonymousID
	copy(s.ID[:], d.fixed(len(s.ID)))
	start := d.varint()
	s.startOrd = d.uint64()
	length := d.uvarint()
	if d.err == nil && (length > math.MaxInt64 || start > math.MaxInt64-int64(length)) {
		d.fail("last event overflows")
	}
	s.Start, s.LastEvent = time.Unix(0, start).UTC(), time.Unix(0, start+int64(length)).UTC()
	base := mark{at: start, ord: s.startOrd}
	flags := d.byte()
	if flags&^flagsAll != 0 {
		d.fail("unknown session flags %#x", flags)
	}
	s.Bounced, s.Closed = flags&flagBounced != 0, flags&flagClosed != 0
	s.Events, s.PageViews, s.interactions, s.OrderCount = d.int("events"), d.int("page views"), d.int("interactions"), d.int("orders")
	s.revenue = d.varint()
	s.UserID = d.str()
	if s.ProfileID = d.str(); s.ProfileID == v.profileID {
		s.ProfileID = v.profileID // share, as SetProfileID does
	}
	s.LandingPage = d.str()
	if flags&flagCurrentIsLanding != 0 {
		s.CurrentPage = s.LandingPage
	} else if s.CurrentPage = d.str(); d.err == nil && s.CurrentPage == s.LandingPage {
		d.fail("current page written again")
	}
	if flags&flagExitPage != 0 {
		if s.ExitPage = d.str(); d.err == nil && s.ExitPage == "" {
			d.fail("empty exit page flagged as set")
		}
	}
	s.Referrer = d.str()
	bits := d.bits(7)
	s.Campaign = Campaign{
		Source:       d.opt(bits, 0, true),
		Medium:       d.opt(bits, 1, true),
		Name:         d.opt(bits, 2, true),
		Term:         d.opt(bits, 3, true),
		Content:      d.opt(bits, 4, true),
		ClickIDParam: d.opt(bits, 5, true),
		ClickID:      d.opt(bits, 6, false), // unique per click: copied, not interned
	}
	s.refHost = d.shared()
	s.Channel.Group = ChannelGroup(d.enum(channelGroups[:]))
	bits = d.bits(3)
	s.Channel.Source, s.Channel.Medium, s.Channel.Campaign = d.opt(bits, 0, true), d.opt(bits, 1, true), d.opt(bits, 2, true)
	s.Device.Type = DeviceType(d.enum(deviceTypes[:]))
	bits = d.bits(5)
	s.Device.OS, s.Device.Browser = d.opt(bits, 0, true), d.opt(bits, 1, true)
	s.Location = Location{Country: d.opt(bits, 2, true), City: d.opt(bits, 3, true), IP: d.opt(bits, 4, false)}
	for _, m := range [...]*mark{&s.landingAt, &s.currentAt, &s.sourceAt, &s.userAt, &s.deviceAt, &s.locationAt, &s.Cart.reset} {
		*m = d.mark(base)
	}
	if n := d.count("cart items", MaxCartItems); n > 0 {
		s.Cart.base = make([]Item, n)
		for i := range s.Cart.base {
			d.item(&s.Cart.base[i])
		}
	}
	if n := d.count("cart changes", MaxCartChanges); n > 0 {
		s.Cart.changes = make([]change, n)
		for i := range s.Cart.changes {
			ch := &s.Cart.changes[i]
			d.item(&ch.item)
			ch.at = d.mark(base)
		}
	}
	if n := d.count("orders", MaxOrders); n > 0 {
		s.Orders = make([]Order, n)
		for i := range s.Orders {
			o := &s.Orders[i]
			o.ID, o.Currency = d.str(), d.shared()
			o.Total = math.Float64frombits(d.uint64())
			o.at = d.mark(base)
			o.Time = time.Unix(0, o.at.at+d.varint()).UTC()
		}
	}
	if d.consent {
		if s.consentAt = d.mark(base); s.consentAt.set() {
			s.Consent = d.consentPrefs()
		}
	}
}

// consentPrefs reads the purposes of a consent, in increasing order, into
// the shared map keptConsent would make of them.
func (d *decoder) consentPrefs() consent.Preferences {
	n := d.count("consent purposes", consent.MaxMessagePurposes)
	var purposes [consent.MaxMessagePurposes][]byte
	var granted [consent.MaxMessagePurposes]bool
	var kb [256]byte
	key := kb[:0]
	for i := 0; i < n && d.err == nil; i++ {
		p := d.raw()
		switch g := d.byte(); {
		case d.err != nil:
		case !consent.ValidPurpose(string(p)):
			d.fail("consent purpose %d of %d bytes not valid", i, len(p))
		case i > 0 && bytes.Compare(purposes[i-1], p) >= 0:
			d.fail("consent purpose %d not after the one before", i)
		case g > 1:
			d.fail("consent value %d, want 0 or 1", g)
		default:
			purposes[i], granted[i] = p, g == 1
			key = appendConsentKey(key, p, granted[i])
		}
	}
	if d.err != nil {
		return nil
	}
	return internConsent(key, func() consent.Preferences {
		prefs := make(consent.Preferences, n)
		for i := range n {
			prefs[internBytes(purposes[i])] = granted[i]
		}
		return prefs
	})
}

func (d *decoder) item(it *Item) {
	bits := d.bits(4)
	it.ProductID, it.SKU, it.Name = d.opt(bits, 0, true), d.opt(bits, 1, true), d.opt(bits, 2, true)
	if bits&itemPrice != 0 {
		price := d.uint64()
		if d.err == nil && price == 0 {
			d.fail("zero price written in full")
		}
		it.Price = math.Float64frombits(price)
	}
	q := d.varint()
	if q < math.MinInt || q > math.MaxInt {
		d.fail("quantity %d overflows an int", q)
	}
	it.Quantity = int(q)
}
