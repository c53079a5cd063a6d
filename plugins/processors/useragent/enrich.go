package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
	"github.com/mileusna/useragent"
)

// uaKey is the key whose absence from an event's payload and batch
// context spares scanning them.
var uaKey = []byte(`"userAgent"`)

// enrich returns the processor's verdict on one event: unchanged when it
// has no user agent (or the client set every key already), dropped when
// it is a bot's and c.DropBots, else changed with members added to the
// message's context. Every byte of the message is kept; only new members
// are inserted.
func enrich(c config, e *eddywasm.Event) eddywasm.Result {
	p, bc := e.Payload, e.BatchContext
	// A cheap scan first: most server-side events have no user agent.
	if !bytes.Contains(p, uaKey) && !bytes.Contains(bc, uaKey) {
		return eddywasm.Result{}
	}
	top, err := scanDocument(p)
	if err != nil {
		// Not an object: nothing to enrich (the collector validates
		// messages; this processor does not refuse them).
		return eddywasm.Result{}
	}
	// The message's context: absent, null, or an object; anything else is
	// the client's business.
	var ctx object
	ctxMember, hasCtx := top.find(p, `"context"`)
	ctxIsObject := false
	if hasCtx && !isNull(p[ctxMember.valStart:ctxMember.valEnd]) {
		if ctx, err = scanObject(p, ctxMember.valStart); err != nil {
			return eddywasm.Result{}
		}
		ctxIsObject = true
	}
	var batch object
	batchOK := false
	if len(bc) > 0 {
		batch, err = scanDocument(bc)
		batchOK = err == nil
	}

	ua := ""
	if ctxIsObject {
		if m, ok := ctx.find(p, `"userAgent"`); ok {
			ua = stringValue(p[m.valStart:m.valEnd])
		}
	}
	if ua == "" && batchOK {
		if m, ok := batch.find(bc, `"userAgent"`); ok {
			ua = stringValue(bc[m.valStart:m.valEnd])
		}
	}
	if ua == "" {
		return eddywasm.Result{}
	}
	a := parse(ua)
	if c.DropBots && a.bot {
		return eddywasm.Drop()
	}

	var edits []edit
	var added []byte // new members of the message's context
	for _, g := range []struct {
		key    string
		fields []field
	}{{`"device"`, a.device}, {`"os"`, a.os}, {`"browser"`, a.browser}} {
		if len(g.fields) == 0 {
			continue
		}
		if m, ok := ctx.find(p, g.key); ctxIsObject && ok {
			// The client's object in the message: complete it in place.
			obj, err := scanObject(p, m.valStart)
			if err != nil {
				continue // not an object: the client's value stays
			}
			if ins := missing(p, obj, g.fields); ins != nil {
				edits = append(edits, edit{at: obj.close, data: ins})
			}
			continue
		}
		if m, ok := batch.find(bc, g.key); batchOK && ok {
			// The client's object in the batch context: complete a copy
			// into the message's context, which wins over it.
			obj, err := scanObject(bc, m.valStart)
			if err != nil {
				continue
			}
			if ins := missing(bc, obj, g.fields); ins != nil {
				v := slices.Concat(bc[m.valStart:obj.close], ins, bc[obj.close:m.valEnd])
				added = appendMember(added, g.key, v)
			}
			continue
		}
		v := []byte{'{'}
		for i, f := range g.fields {
			if i > 0 {
				v = append(v, ',')
			}
			v = append(append(append(v, f.key...), ':'), f.raw...)
		}
		added = appendMember(added, g.key, append(v, '}'))
	}
	_, inCtx := ctx.find(p, `"bot"`)
	_, inBatch := batch.find(bc, `"bot"`)
	if !(ctxIsObject && inCtx) && !(batchOK && inBatch) {
		bot := []byte("false")
		if a.bot {
			bot = []byte("true")
		}
		added = appendMember(added, `"bot"`, bot)
	}

	switch {
	case len(added) == 0:
	case ctxIsObject:
		if len(ctx.members) > 0 {
			added = append([]byte{','}, added...)
		}
		edits = append(edits, edit{at: ctx.close, data: added})
	case hasCtx: // "context": null
		edits = append(edits, edit{at: ctxMember.valStart, end: ctxMember.valEnd, data: slices.Concat([]byte{'{'}, added, []byte{'}'})})
	default:
		sep := []byte{}
		if len(top.members) > 0 {
			sep = []byte{','}
		}
		edits = append(edits, edit{at: top.close, data: slices.Concat(sep, []byte(`"context":{`), added, []byte{'}'})})
	}
	if len(edits) == 0 {
		return eddywasm.Result{}
	}
	return eddywasm.Change(apply(p, edits), e.IP)
}

// field is a key of a context object and the value parsed for it.
type field struct {
	key   string // quoted
	value string
	raw   []byte // value as JSON
}

// missing returns the members of fields the object obj of b lacks, as
// JSON to insert before its closing brace, or nil when none is. A version
// is added only beside a name the client did not set differently, so that
// a client's "Android" never gets a Windows version.
func missing(b []byte, obj object, fields []field) []byte {
	var ins []byte
	for _, f := range fields {
		if _, ok := obj.find(b, f.key); ok {
			continue
		}
		if f.key == `"version"` {
			if name, ok := obj.find(b, `"name"`); ok && !strings.EqualFold(stringValue(b[name.valStart:name.valEnd]), fields[0].value) {
				continue
			}
		}
		if len(ins) > 0 || len(obj.members) > 0 {
			ins = append(ins, ',')
		}
		ins = append(append(append(ins, f.key...), ':'), f.raw...)
	}
	return ins
}

// appendMember appends "key":value to a list of members.
func appendMember(b []byte, key string, value []byte) []byte {
	if len(b) > 0 {
		b = append(b, ',')
	}
	return append(append(append(b, key...), ':'), value...)
}

// edit replaces b[at:end] (an insertion when end is 0) with data.
type edit struct {
	at, end int
	data    []byte
}

// apply returns a copy of b with edits, which do not overlap, made.
func apply(b []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(x, y edit) int { return x.at - y.at })
	n := len(b)
	for _, e := range edits {
		n += len(e.data)
	}
	out := make([]byte, 0, n)
	last := 0
	for _, e := range edits {
		out = append(append(out, b[last:e.at]...), e.data...)
		last = max(e.at, e.end)
	}
	return append(out, b[last:]...)
}

// stringValue returns a JSON string's value, "" for anything else.
func stringValue(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// agent is what the processor writes for one user agent, ready to insert.
type agent struct {
	bot                 bool
	device, os, browser []field
}

// The agents parsed lately: a site's visitors use a few agents, and
// parsing is the costliest step after scanning.
var (
	agents   = map[string]*agent{}
	maxCache = 4096
)

// parse parses ua, from the cache when it can.
func parse(ua string) *agent {
	if a, ok := agents[ua]; ok {
		return a
	}
	if len(agents) >= maxCache {
		clear(agents)
	}
	u := useragent.Parse(ua)
	a := &agent{bot: u.Bot}
	add := func(fs []field, key, value string) []field {
		if value == "" {
			return fs
		}
		return append(fs, field{key: key, value: value, raw: encode(value)})
	}
	a.device = add(nil, `"type"`, deviceType(u))
	if u.OS != "" {
		a.os = add(add(nil, `"name"`, u.OS), `"version"`, u.OSVersion)
	}
	if u.Name != "" {
		a.browser = add(add(nil, `"name"`, u.Name), `"version"`, u.Version)
	}
	// The key is a copy: ua may share a buffer Eddy reuses.
	agents[strings.Clone(ua)] = a
	return a
}

// deviceType is context.device.type for an agent: bot, tablet, mobile,
// desktop, or "" when unknown.
func deviceType(ua useragent.UserAgent) string {
	switch {
	case ua.Bot:
		return "bot"
	case ua.Tablet:
		return "tablet"
	case ua.Mobile:
		return "mobile"
	case ua.Desktop:
		return "desktop"
	}
	return ""
}

// encode marshals a string as JSON without escaping <, > and &.
func encode(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
