package main

import (
	"net/netip"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// ipAction is what becomes of an address after lookup.
type ipAction int

const (
	keepIP ipAction = iota
	truncateIP
	removeIP
)

// apply returns the address to keep in place of s, and false when none
// is: removed, or not an address truncation can vouch for.
func (a ipAction) apply(s string) (string, bool) {
	switch a {
	case truncateIP:
		addr, ok := parseAddr(s)
		if !ok {
			return "", false
		}
		bits := 48
		if addr.Is4() {
			bits = 24
		}
		pfx, err := addr.Prefix(bits)
		if err != nil {
			return "", false
		}
		return pfx.Addr().String(), true
	case removeIP:
		return "", false
	}
	return s, true
}

// parseAddr parses an address, with or without a port; an IPv4-mapped
// IPv6 address counts as IPv4.
func parseAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		addr = ap.Addr()
	}
	return addr.Unmap().WithZone(""), true
}

// emptyObject is the location written when the client set none.
var emptyObject = []byte("{}")

// enricher changes events one by one, reusing its scratch space.
type enricher struct {
	inst *installation

	payloadM, ctxM, batchM, locM []member
	loc                          []byte
}

// ctxFacts is what the enricher needs from a context object.
type ctxFacts struct {
	obj    object
	ip     []byte // the last "ip" value
	locIdx int    // the member index of the last "location", or -1
	ipKeys bool   // whether any "ip" member is a string to act on
}

func (e *enricher) facts(raw []byte, buf *[]member) (ctxFacts, bool) {
	f := ctxFacts{locIdx: -1}
	obj, err := scanObject(raw, *buf)
	*buf = obj.members
	if err != nil {
		return f, false
	}
	f.obj = obj
	for i, m := range obj.members {
		key := raw[m.keyStart:m.keyEnd]
		switch {
		case keyIs(key, "ip"):
			f.ip = raw[m.valStart:m.valEnd]
			if s, ok := stringValue(f.ip); ok && s != "" {
				f.ipKeys = true
			}
		case keyIs(key, "location"):
			f.locIdx = i
		}
	}
	return f, true
}

// clientIP returns the address a context sets, if any.
func (f *ctxFacts) clientIP() (string, bool) {
	s, ok := stringValue(f.ip)
	return s, ok && s != ""
}

// enrich looks up ev's address and changes ev in place: its payload's
// context.location, and its addresses if the installation truncates or
// removes them. Bytes it does not change are copied as they came.
func (e *enricher) enrich(ev *eddyplugin.Event) error {
	action := e.inst.ipFix
	payload := ev.Payload

	// The message's context: writable when the payload is an object and
	// its context an object, null or absent.
	pobj, perr := scanObject(payload, e.payloadM)
	e.payloadM = pobj.members
	ctxIdx := -1
	var ctxRaw []byte
	var msg ctxFacts
	writable := perr == nil
	if writable {
		for i, m := range pobj.members {
			if keyIs(payload[m.keyStart:m.keyEnd], "context") {
				ctxIdx = i
			}
		}
		if ctxIdx >= 0 {
			m := pobj.members[ctxIdx]
			ctxRaw = payload[m.valStart:m.valEnd]
			if isNull(ctxRaw) {
				ctxRaw = nil
			}
		}
		if ctxRaw == nil {
			ctxRaw = emptyObject
		}
		msg, writable = e.facts(ctxRaw, &e.ctxM)
	}
	var batch ctxFacts
	batchOK := false
	if len(ev.BatchContext) > 0 {
		batch, batchOK = e.facts(ev.BatchContext, &e.batchM)
	}

	ip := ev.IP
	if s, ok := msg.clientIP(); writable && ok {
		ip = s
	} else if s, ok := batch.clientIP(); batchOK && ok {
		ip = s
	}
	var pl *place
	var lookupErr error
	if addr, ok := parseAddr(ip); ok {
		pl, lookupErr = e.inst.lookup(addr)
	}

	// The location to write: the client's own (the message's, else the
	// batch's) with the keys it lacks.
	haveLoc := false
	if pl != nil && writable {
		var base []byte
		if msg.locIdx >= 0 {
			m := msg.obj.members[msg.locIdx]
			if v := ctxRaw[m.valStart:m.valEnd]; !isNull(v) {
				base = v
			}
		}
		if base == nil && batchOK && batch.locIdx >= 0 {
			m := batch.obj.members[batch.locIdx]
			if v := ev.BatchContext[m.valStart:m.valEnd]; !isNull(v) {
				base = v
			}
		}
		if base == nil {
			base = emptyObject
		}
		e.loc, haveLoc = e.location(e.loc[:0], base, pl)
	}

	if writable && (haveLoc || action != keepIP && msg.ipKeys) {
		var loc []byte
		if haveLoc {
			loc = e.loc
		}
		out := make([]byte, 0, len(payload)+len(loc)+32)
		if ctxIdx >= 0 {
			m := pobj.members[ctxIdx]
			out = append(out, payload[:m.valStart]...)
			out = rewriteContext(out, ctxRaw, &msg, action, loc)
			out = append(out, payload[m.valEnd:]...)
		} else {
			out = append(out, payload[:pobj.close]...)
			if len(pobj.members) > 0 {
				out = append(out, ',')
			}
			out = append(out, `"context":`...)
			out = rewriteContext(out, ctxRaw, &msg, action, loc)
			out = append(out, payload[pobj.close:]...)
		}
		ev.Payload = out
	}
	if batchOK && action != keepIP && batch.ipKeys {
		out := make([]byte, 0, len(ev.BatchContext))
		ev.BatchContext = rewriteContext(out, ev.BatchContext, &batch, action, nil)
	}
	if action != keepIP && ev.IP != "" {
		ev.IP, _ = action.apply(ev.IP)
	}
	return lookupErr
}

// location appends to dst the object base with the members of pl it
// lacks; false when it lacks none, or base is not an object.
func (e *enricher) location(dst, base []byte, pl *place) ([]byte, bool) {
	if !isObject(base) {
		return dst, false
	}
	obj, err := scanObject(base, e.locM)
	e.locM = obj.members
	if err != nil {
		return dst, false
	}
	var set [numKeys]bool
	for _, m := range obj.members {
		key := base[m.keyStart:m.keyEnd]
		for k, name := range locationKeys {
			if keyIs(key, name) {
				set[k] = true
			}
		}
	}
	dst = append(dst, base[:obj.close]...)
	n, added := len(obj.members), false
	for k, frag := range pl.members {
		if frag == nil || set[k] {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, frag...)
		n++
		added = true
	}
	return append(dst, base[obj.close:]...), added
}

// rewriteContext appends the context object raw to dst, members in order
// and whitespace between them dropped, with its string "ip" members
// truncated or removed as action says, and loc (when not nil) as its
// "location": in place of its last one, or added at its end.
func rewriteContext(dst, raw []byte, f *ctxFacts, action ipAction, loc []byte) []byte {
	dst = append(dst, '{')
	n := 0
	write := func(key, val []byte) {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, key...)
		dst = append(dst, ':')
		dst = append(dst, val...)
		n++
	}
	for i, m := range f.obj.members {
		key, val := raw[m.keyStart:m.keyEnd], raw[m.valStart:m.valEnd]
		switch {
		case i == f.locIdx && loc != nil:
			val = loc
		case action != keepIP && keyIs(key, "ip"):
			if s, ok := stringValue(val); ok && s != "" {
				kept, ok := action.apply(s)
				if !ok {
					continue
				}
				val = appendString(nil, kept)
			}
		}
		write(key, val)
	}
	if loc != nil && f.locIdx < 0 {
		write([]byte(`"location"`), loc)
	}
	return append(dst, '}')
}
