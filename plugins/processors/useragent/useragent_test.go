package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/wasmhost"
	"github.com/eddy-cdp/eddy/sdk/eddywasm"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

const (
	chromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	iPhoneSafari  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	iPadSafari    = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	googlebot     = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// message is a page call with the given context members (JSON, without
// braces), and other members the processor must keep as they are.
func message(context string) string {
	return `{"type":"page","messageId":"m-1","anonymousId":"a-1","name":"Home <b>&</b>",` +
		`"properties":{"url":"https://shop.example.com/?a=1&b=2","nested":{"list":[1,2.50,"x"]}},` +
		`"context":{` + context + `},"timestamp":"2026-11-22T10:00:00.123Z"}`
}

type testCase struct {
	name         string
	payload      string
	batchContext string
	dropBots     bool
	// verdict and, for a change, the context to expect.
	verdict eddywasm.Verdict
	context string
}

var cases = []testCase{
	{name: "Chrome on Windows is a desktop", payload: message(`"userAgent":"` + chromeWindows + `"`), verdict: eddywasm.Changed,
		context: `{"userAgent":"` + chromeWindows + `","device":{"type":"desktop"},"os":{"name":"Windows","version":"10.0"},` +
			`"browser":{"name":"Chrome","version":"131.0.0.0"},"bot":false}`},
	{name: "Safari on an iPhone is a mobile", payload: message(`"userAgent":"` + iPhoneSafari + `"`), verdict: eddywasm.Changed,
		context: `{"userAgent":"` + iPhoneSafari + `","device":{"type":"mobile"},"os":{"name":"iOS","version":"17.5"},` +
			`"browser":{"name":"Safari","version":"17.5"},"bot":false}`},
	{name: "an iPad is a tablet", payload: message(`"userAgent":"` + iPadSafari + `"`), verdict: eddywasm.Changed,
		context: `{"userAgent":"` + iPadSafari + `","device":{"type":"tablet"},"os":{"name":"iOS","version":"17.5"},` +
			`"browser":{"name":"Safari","version":"17.5"},"bot":false}`},
	{name: "Googlebot is a bot", payload: message(`"userAgent":"` + googlebot + `"`), verdict: eddywasm.Changed,
		context: `{"userAgent":"` + googlebot + `","device":{"type":"bot"},"browser":{"name":"Googlebot","version":"2.1"},"bot":true}`},
	{name: "Googlebot is dropped with drop_bots", payload: message(`"userAgent":"` + googlebot + `"`), dropBots: true,
		verdict: eddywasm.Dropped},
	{name: "a person is kept with drop_bots", payload: message(`"userAgent":"` + chromeWindows + `"`), dropBots: true,
		verdict: eddywasm.Changed,
		context: `{"userAgent":"` + chromeWindows + `","device":{"type":"desktop"},"os":{"name":"Windows","version":"10.0"},` +
			`"browser":{"name":"Chrome","version":"131.0.0.0"},"bot":false}`},
	{name: "values the client set are kept",
		payload: message(`"userAgent":"` + iPhoneSafari + `","os":{"name":"iPadOS","version":"18.0"},` +
			`"device":{"model":"iPhone15,2"},"browser":{"name":"Safari"},"bot":true`),
		verdict: eddywasm.Changed,
		context: `{"userAgent":"` + iPhoneSafari + `","os":{"name":"iPadOS","version":"18.0"},` +
			`"device":{"model":"iPhone15,2","type":"mobile"},"browser":{"name":"Safari","version":"17.5"},"bot":true}`},
	{name: "no version beside a name the client set differently",
		payload: message(`"userAgent":"` + chromeWindows + `","os":{"name":"ReactOS"}`), verdict: eddywasm.Changed,
		context: `{"userAgent":"` + chromeWindows + `","os":{"name":"ReactOS"},"device":{"type":"desktop"},` +
			`"browser":{"name":"Chrome","version":"131.0.0.0"},"bot":false}`},
	{name: "everything set by the client is unchanged",
		payload: message(`"userAgent":"` + chromeWindows + `","os":{"name":"Windows","version":"11"},` +
			`"device":{"type":"desktop"},"browser":{"name":"Chrome","version":"131"},"bot":false`),
		verdict: eddywasm.Unchanged},
	{name: "the batch context's user agent", payload: message(`"locale":"fr-FR"`),
		// The batch's complete os stays where it is; its device is
		// completed into the message's context, which wins over it.
		batchContext: `{"userAgent":"` + iPhoneSafari + `","os":{"name":"iOS","version":"17.5.1"},"device":{"model":"iPhone15,2"}}`,
		verdict:      eddywasm.Changed,
		context: `{"locale":"fr-FR","device":{"model":"iPhone15,2","type":"mobile"},` +
			`"browser":{"name":"Safari","version":"17.5"},"bot":false}`},
	{name: "a message without context gets one", payload: `{"type":"track","event":"Bought"}`,
		batchContext: `{"userAgent":"` + googlebot + `"}`, verdict: eddywasm.Changed,
		context: `{"device":{"type":"bot"},"browser":{"name":"Googlebot","version":"2.1"},"bot":true}`},
	{name: "a null context is replaced", payload: `{"type":"track","context":null,"event":"Bought"}`,
		batchContext: `{"userAgent":"` + googlebot + `"}`, verdict: eddywasm.Changed,
		context: `{"device":{"type":"bot"},"browser":{"name":"Googlebot","version":"2.1"},"bot":true}`},
	{name: "an empty context is filled", payload: message(``),
		batchContext: `{"userAgent":"` + chromeWindows + `"}`, verdict: eddywasm.Changed,
		context: `{"device":{"type":"desktop"},"os":{"name":"Windows","version":"10.0"},` +
			`"browser":{"name":"Chrome","version":"131.0.0.0"},"bot":false}`},
	{name: "an escaped user agent is read", payload: message(`"userAgent":"Mozilla/5.0 (compatible; Googlebot/2.1; +http:\/\/www.google.com\/bot.html)"`),
		verdict: eddywasm.Changed,
		context: `{"userAgent":"` + googlebot + `","device":{"type":"bot"},"browser":{"name":"Googlebot","version":"2.1"},"bot":true}`},
	{name: "no user agent is unchanged", payload: message(`"locale":"fr-FR"`), verdict: eddywasm.Unchanged},
	{name: "an empty user agent is unchanged", payload: message(`"userAgent":""`), verdict: eddywasm.Unchanged},
	{name: "no context at all is unchanged", payload: `{"type":"track","event":"Bought"}`, verdict: eddywasm.Unchanged},
	{name: "a context that is not an object is left alone", payload: `{"type":"track","context":"userAgent"}`,
		verdict: eddywasm.Unchanged},
	{name: "a payload that is not JSON is left alone", payload: `{"userAgent": nope`, verdict: eddywasm.Unchanged},
}

func (c testCase) event(i int) eddywasm.Event {
	e := eddywasm.Event{MessageID: fmt.Sprintf("m%d", i), WorkspaceID: "w", Type: "page", IP: "203.0.113.7",
		Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Payload: []byte(c.payload)}
	if c.batchContext != "" {
		e.BatchContext = []byte(c.batchContext)
	}
	return e
}

// check compares a result with the case: the verdict, and for a change
// the new context and every other member kept as it was.
func (c testCase) check(t *testing.T, r eddywasm.Result) {
	t.Helper()
	if r.Verdict != c.verdict {
		t.Fatalf("%s: %s (%s), want %s", c.name, r.Verdict, r.Payload, c.verdict)
	}
	if r.Verdict != eddywasm.Changed {
		return
	}
	if r.IP != "203.0.113.7" {
		t.Errorf("%s: IP %q, want it kept", c.name, r.IP)
	}
	var got, want map[string]any
	if err := json.Unmarshal(r.Payload, &got); err != nil {
		t.Fatalf("%s: payload %s: %v", c.name, r.Payload, err)
	}
	if err := json.Unmarshal([]byte(c.payload), &want); err != nil {
		t.Fatal(err)
	}
	var wantContext any
	if err := json.Unmarshal([]byte(c.context), &wantContext); err != nil {
		t.Fatalf("%s: the case's context: %v", c.name, err)
	}
	want["context"] = wantContext
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant context %s", c.name, r.Payload, c.context)
	}
	// Every byte outside the context is kept as the client sent it (the
	// number 2.50, the order of members, the unescaped <b>&</b>).
	const tail = `,"timestamp":"2026-11-22T10:00:00.123Z"}`
	if before, _, ok := strings.Cut(c.payload, `"context":`); ok {
		out := string(r.Payload)
		if !strings.HasPrefix(out, before) || strings.HasSuffix(c.payload, tail) && !strings.HasSuffix(out, tail) {
			t.Errorf("%s: bytes outside the context changed:\n got %s\nfrom %s", c.name, r.Payload, c.payload)
		}
	}
}

func TestEnrich(t *testing.T) {
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.event(i)
			c.check(t, enrich(config{DropBots: c.dropBots}, &e))
		})
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    config
		wantErr string
	}{
		{raw: ``, want: config{}},
		{raw: `{}`, want: config{}},
		{raw: `{"drop_bots":true}`, want: config{DropBots: true}},
		{raw: `{"drop_bot":true}`, wantErr: `unknown field "drop_bot"`},
		{raw: `{"drop_bots":"yes"}`, wantErr: "drop_bots"},
		{raw: `{} {}`, wantErr: "more than one"},
	} {
		got, err := parseConfig(json.RawMessage(tc.raw))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error containing %q", tc.raw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.raw, got, err, tc.want)
		}
	}
}

var (
	buildOnce sync.Once
	wasm      []byte
	// runtime is shared by the tests, so that the module compiles once
	// (compiling dominates under the race detector).
	runtime *wasmhost.Runtime
)

func TestMain(m *testing.M) {
	code := m.Run()
	if runtime != nil {
		_ = runtime.Close(context.Background())
	}
	os.Exit(code)
}

// load builds the plugin as Eddy does (once per test binary) and loads
// it into a real WASM host with config.
func load(tb testing.TB, config string) (*wasmhost.Module, error) {
	tb.Helper()
	buildOnce.Do(func() {
		m := plugintest.Build(tb, ".")
		if m.Runtime != "wasm" {
			tb.Fatalf("manifest runtime %q, want wasm", m.Runtime)
		}
		var err error
		if wasm, err = os.ReadFile(m.Artifact()); err != nil {
			tb.Fatal(err)
		}
		if runtime, err = wasmhost.NewRuntime(context.Background(), 0, ""); err != nil {
			tb.Fatalf("wasm runtime: %v", err)
		}
	})
	if runtime == nil {
		tb.Fatal("the plugin did not build (see the first failure)")
	}
	m, err := runtime.Load(context.Background(), "processor.useragent", wasm, []byte(config), wasmhost.Options{CallTimeout: 20 * time.Second})
	if err == nil {
		tb.Cleanup(func() { _ = m.Close(context.Background()) })
	}
	return m, err
}

// mustLoad is load that fails the test on an error.
func mustLoad(tb testing.TB, config string) *wasmhost.Module {
	tb.Helper()
	m, err := load(tb, config)
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	return m
}

// The built module, run by Eddy's WASM host, gives every case's verdict
// in one batch.
func TestPluginInWasmHost(t *testing.T) {
	ctx := context.Background()
	for _, dropBots := range []bool{false, true} {
		m := mustLoad(t, fmt.Sprintf(`{"drop_bots":%v}`, dropBots))
		var batch []eddywasm.Event
		var want []testCase
		for i, c := range cases {
			if c.dropBots == dropBots || c.verdict == eddywasm.Unchanged {
				batch = append(batch, c.event(i))
				want = append(want, c)
			}
		}
		results, err := m.Process(ctx, batch)
		if err != nil {
			t.Fatalf("drop_bots=%v: Process: %v", dropBots, err)
		}
		if len(results) != len(batch) {
			t.Fatalf("%d results for %d events", len(results), len(batch))
		}
		for i, c := range want {
			c.check(t, results[i])
		}
	}
}

func TestPluginRefusesABadConfiguration(t *testing.T) {
	_, err := load(t, `{"drop_bot":true}`)
	var ce *wasmhost.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "drop_bot") {
		t.Fatalf("Load with drop_bot: %v, want a ConfigError naming the field", err)
	}
}

// BenchmarkPlugin measures the plugin in Eddy's WASM host on batches of
// 100 page events with a browser's user agent (parsing dominates).
func BenchmarkPlugin(b *testing.B) {
	m := mustLoad(b, `{}`)
	ctx := context.Background()
	batch := make([]eddywasm.Event, 100)
	for i := range batch {
		batch[i] = cases[i%3].event(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		results, err := m.Process(ctx, batch)
		if err != nil || len(results) != len(batch) || results[0].Verdict != eddywasm.Changed {
			b.Fatalf("Process: %d results, %v", len(results), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
