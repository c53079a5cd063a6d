package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

const (
	london = `{"country":"United Kingdom","country_code":"GB","region":"England","region_code":"ENG","city":"London","latitude":51.5142,"longitude":-0.0931}`
	milton = `{"country":"United States","country_code":"US","region":"Washington","region_code":"WA","city":"Milton","latitude":47.2513,"longitude":-122.3149}`
	berlin = `{"country":"Germany","country_code":"DE","region":"Land Berlin","region_code":"BE","city":"Berlin","latitude":52.5244,"longitude":13.4105}`
	paris  = `{"country":"France","country_code":"FR","region":"Île-de-France","region_code":"IDF","city":"Paris","latitude":48.8534,"longitude":2.3488}`
)

// processCase is one event through one installation, and what must come
// out: the payload byte for byte, the batch context and the address.
type processCase struct {
	name                 string
	inst                 string
	payload, batch, ip   string
	wantPayload          string
	wantBatch, wantIP    string
	sameBatch, sameIP    bool // expect the batch context / address unchanged
	samePayloadAsWritten bool // expect the payload unchanged
}

var processCases = []processCase{
	{
		name:        "lookup from the collector's address",
		inst:        "plain",
		payload:     `{"type":"track","event":"Buy","context":{"library":{"name":"analytics-node","version":"3.0.0"}},"properties":{"price":9.5,"tags":["a","b"]}}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","event":"Buy","context":{"library":{"name":"analytics-node","version":"3.0.0"},"location":` + london + `},"properties":{"price":9.5,"tags":["a","b"]}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "message without context gets one, other bytes untouched",
		inst:        "plain",
		payload:     "{ \"type\" : \"page\",\n  \"name\": \"Home \\u00e9\"\n}",
		ip:          "2a02:8010:1234:5678::1",
		wantPayload: "{ \"type\" : \"page\",\n  \"name\": \"Home \\u00e9\"\n,\"context\":{\"location\":" + berlin + "}}",
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "null context is replaced",
		inst:        "plain",
		payload:     `{"type":"identify","context":null,"userId":"u1"}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"identify","context":{"location":` + london + `},"userId":"u1"}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "client context.ip wins over the collector's address",
		inst:        "plain",
		payload:     `{"type":"track","context":{"ip":"216.160.83.56"}}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","context":{"ip":"216.160.83.56","location":` + milton + `}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "batch context.ip wins over the collector's address",
		inst:        "plain",
		payload:     `{"type":"track","context":{}}`,
		batch:       `{"ip":"216.160.83.56","library":{"name":"x"}}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","context":{"location":` + milton + `}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "message context.ip wins over the batch's",
		inst:        "plain",
		payload:     `{"type":"track","context":{"ip":"81.2.69.142"}}`,
		batch:       `{"ip":"216.160.83.56"}`,
		wantPayload: `{"type":"track","context":{"ip":"81.2.69.142","location":` + london + `}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "client-set location keys are kept",
		inst:        "plain",
		payload:     `{"type":"track","context":{"location":{"city":"Londinium","latitude":null,"speed":3}}}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","context":{"location":{"city":"Londinium","latitude":null,"speed":3,"country":"United Kingdom","country_code":"GB","region":"England","region_code":"ENG","longitude":-0.0931}}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "batch-set location keys are kept in the message's location",
		inst:        "plain",
		payload:     `{"type":"track"}`,
		batch:       `{"location":{"country":"Albion"}}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","context":{"location":{"country":"Albion","country_code":"GB","region":"England","region_code":"ENG","city":"London","latitude":51.5142,"longitude":-0.0931}}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:                 "a complete client location is left alone",
		inst:                 "plain",
		payload:              `{"context":{"location":{"country":"a","country_code":"b","region":"c","region_code":"d","city":"e","latitude":1,"longitude":2}}}`,
		ip:                   "81.2.69.142",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:        "record with country only writes what it has",
		inst:        "plain",
		payload:     `{"context":{}}`,
		ip:          "89.160.20.112",
		wantPayload: `{"context":{"location":{"country":"Sweden","country_code":"SE","latitude":59.3247,"longitude":18.056}}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:                 "unknown address leaves the event unchanged",
		inst:                 "plain",
		payload:              `{"type":"track","context":{"ip":"8.8.8.8"}}`,
		ip:                   "1.1.1.1",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:                 "record without place fields leaves the event unchanged",
		inst:                 "plain",
		payload:              `{"type":"track"}`,
		ip:                   "2001:480::1",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:                 "private address leaves the event unchanged",
		inst:                 "plain",
		payload:              `{"type":"track","context":{"ip":"10.1.2.3"}}`,
		ip:                   "81.2.69.142",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:                 "payload that is not an object is kept as it is",
		inst:                 "plain",
		payload:              `["not","an","object"]`,
		ip:                   "81.2.69.142",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:                 "malformed payload is kept as it is",
		inst:                 "plain",
		payload:              `{"type":"track","context":{"ip":"81.2.69.142"`,
		ip:                   "81.2.69.142",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:                 "context that is not an object is kept as it is",
		inst:                 "plain",
		payload:              `{"type":"track","context":"web"}`,
		ip:                   "81.2.69.142",
		samePayloadAsWritten: true, sameBatch: true, sameIP: true,
	},
	{
		name:        "names in the preferred language, falling back",
		inst:        "german",
		payload:     `{"context":{}}`,
		ip:          "2a02:8010::2",
		wantPayload: `{"context":{"location":{"country":"Deutschland","country_code":"DE","region":"Berlin","region_code":"BE","city":"Berlin","latitude":52.5244,"longitude":13.4105}}}`,
		sameBatch:   true, sameIP: true,
	},
	{
		name:        "truncate_ip truncates IPv4 to /24 everywhere",
		inst:        "truncate",
		payload:     `{"type":"track","context":{"ip":"81.2.69.142","page":{"url":"https://x"}}}`,
		batch:       `{"ip":"81.2.69.142","library":{"name":"x"}}`,
		ip:          "216.160.83.56",
		wantPayload: `{"type":"track","context":{"ip":"81.2.69.0","page":{"url":"https://x"},"location":` + london + `}}`,
		wantBatch:   `{"ip":"81.2.69.0","library":{"name":"x"}}`,
		wantIP:      "216.160.83.0",
	},
	{
		name:        "truncate_ip truncates IPv6 to /48",
		inst:        "truncate",
		payload:     `{"context":{"ip":"2a02:8010:abcd:ef01:2345::9"}}`,
		ip:          "2a02:8010:abcd:ef01::1",
		wantPayload: `{"context":{"ip":"2a02:8010:abcd::","location":` + berlin + `}}`,
		wantIP:      "2a02:8010:abcd::",
		sameBatch:   true,
	},
	{
		name:        "truncate_ip applies to addresses the database does not know",
		inst:        "truncate",
		payload:     `{"context":{"ip":"8.8.8.8"}}`,
		ip:          "1.1.1.1",
		wantPayload: `{"context":{"ip":"8.8.8.0"}}`,
		wantIP:      "1.1.1.0",
		sameBatch:   true,
	},
	{
		name:        "remove_ip removes IPv4 everywhere",
		inst:        "remove",
		payload:     `{"type":"track","context":{"ip":"81.2.69.142","locale":"en-GB"}}`,
		batch:       `{"library":{"name":"x"},"ip":"81.2.69.142"}`,
		ip:          "81.2.69.142",
		wantPayload: `{"type":"track","context":{"locale":"en-GB","location":` + london + `}}`,
		wantBatch:   `{"library":{"name":"x"}}`,
		wantIP:      "",
	},
	{
		name:        "remove_ip removes IPv6",
		inst:        "remove",
		payload:     `{"context":{"ip":"2a02:8010::1"}}`,
		ip:          "2a02:8010::1",
		wantPayload: `{"context":{"location":` + berlin + `}}`,
		wantIP:      "",
		sameBatch:   true,
	},
}

// TestProcess runs the built plugin through Eddy's plugin host and checks
// each case over gRPC.
func TestProcess(t *testing.T) {
	p := plugintest.Start(t, ".")
	ctx := plugintest.Context(t, time.Minute)
	db := buildCityDB(t, "world.json")
	for id, cfg := range map[string]string{
		"plain":    `{"database":%q}`,
		"german":   `{"database":%q,"languages":["de","en"]}`,
		"truncate": `{"database":%q,"truncate_ip":true}`,
		"remove":   `{"database":%q,"remove_ip":true}`,
	} {
		in := eddyplugin.Installation{ID: id, PluginID: "processor.geoip", WorkspaceID: "ws-" + id, Config: []byte(fmt.Sprintf(cfg, db))}
		if err := p.Init(ctx, in); err != nil {
			t.Fatalf("init %s: %v", id, err)
		}
	}
	for _, tc := range processCases {
		t.Run(tc.name, func(t *testing.T) {
			in := eddyplugin.Event{
				MessageID: "m1", WorkspaceID: "ws-" + tc.inst, SourceID: "s1", Type: "track",
				Timestamp: time.Unix(1700000000, 0).UTC(), ReceivedAt: time.Unix(1700000001, 0).UTC(),
				Payload: []byte(tc.payload), IP: tc.ip,
			}
			if tc.batch != "" {
				in.BatchContext = []byte(tc.batch)
			}
			kept, rejected, err := p.Process(ctx, tc.inst, []eddyplugin.Event{in})
			if err != nil {
				t.Fatalf("process: %v", err)
			}
			if len(rejected) != 0 || len(kept) != 1 {
				t.Fatalf("got %d kept, %d rejected; want the event kept", len(kept), len(rejected))
			}
			got := kept[0]
			wantPayload := tc.wantPayload
			if tc.samePayloadAsWritten {
				wantPayload = tc.payload
			}
			if string(got.Payload) != wantPayload {
				t.Errorf("payload:\n got %s\nwant %s", got.Payload, wantPayload)
			}
			if tc.samePayloadAsWritten || json.Valid([]byte(tc.payload)) {
				// Still one JSON object with every original member.
				checkMembersKept(t, tc.payload, string(got.Payload))
			}
			wantBatch := tc.wantBatch
			if tc.sameBatch {
				wantBatch = tc.batch
			}
			if string(got.BatchContext) != wantBatch {
				t.Errorf("batch context:\n got %s\nwant %s", got.BatchContext, wantBatch)
			}
			wantIP := tc.wantIP
			if tc.sameIP {
				wantIP = tc.ip
			}
			if got.IP != wantIP {
				t.Errorf("IP = %q, want %q", got.IP, wantIP)
			}
			if got.MessageID != in.MessageID || got.Type != in.Type || !got.Timestamp.Equal(in.Timestamp) || !got.ReceivedAt.Equal(in.ReceivedAt) || got.SourceID != in.SourceID {
				t.Errorf("event fields changed: got %+v", got)
			}
		})
	}

	t.Run("a batch keeps every event in order", func(t *testing.T) {
		var events []eddyplugin.Event
		for i, tc := range processCases[:8] {
			events = append(events, eddyplugin.Event{MessageID: fmt.Sprint(i), Payload: []byte(tc.payload), BatchContext: []byte(tc.batch), IP: tc.ip})
		}
		kept, rejected, err := p.Process(ctx, "plain", events)
		if err != nil || len(rejected) != 0 || len(kept) != len(events) {
			t.Fatalf("got %d kept, %d rejected, err %v; want %d kept", len(kept), len(rejected), err, len(events))
		}
		for i, ev := range kept {
			if ev.MessageID != fmt.Sprint(i) || string(ev.Payload) != processCases[i].wantPayload {
				t.Errorf("event %d: id %s payload %s; want %s", i, ev.MessageID, ev.Payload, processCases[i].wantPayload)
			}
		}
	})
}

// checkMembersKept fails unless got is a JSON object holding every member
// of in, other than context, with the same value.
func checkMembersKept(t *testing.T, in, got string) {
	t.Helper()
	var a, b map[string]json.RawMessage
	if json.Unmarshal([]byte(in), &a) != nil {
		return // not an object: the exact comparison covers it
	}
	if err := json.Unmarshal([]byte(got), &b); err != nil {
		t.Fatalf("output is not a JSON object: %v", err)
	}
	for k, v := range a {
		if k == "context" {
			continue
		}
		if string(b[k]) != string(v) {
			t.Errorf("member %s: got %s, want %s", k, b[k], v)
		}
	}
}

// TestInstallations checks installations side by side and their lifecycle.
func TestInstallations(t *testing.T) {
	p := plugintest.Start(t, ".")
	ctx := plugintest.Context(t, time.Minute)
	world, other := buildCityDB(t, "world.json"), buildCityDB(t, "other.json")
	for id, db := range map[string]string{"world": world, "other": other} {
		cfg, _ := json.Marshal(map[string]any{"database": db})
		if err := p.Init(ctx, eddyplugin.Installation{ID: id, PluginID: "processor.geoip", WorkspaceID: "ws-" + id, Config: cfg}); err != nil {
			t.Fatalf("init %s: %v", id, err)
		}
	}

	t.Run("two installations with different databases at once", func(t *testing.T) {
		want := map[string]string{"world": london, "other": paris}
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 20 {
			id := []string{"world", "other"}[i%2]
			wg.Go(func() {
				ev := eddyplugin.Event{MessageID: "m", Payload: []byte(`{"type":"track"}`), IP: "81.2.69.142"}
				kept, _, err := p.Process(ctx, id, []eddyplugin.Event{ev})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				if w := `{"type":"track","context":{"location":` + want[id] + `}}`; len(kept) != 1 || string(kept[0].Payload) != w {
					errs <- fmt.Errorf("%s: got %v, want payload %s", id, kept, w)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("missing database is an Init error naming config.database", func(t *testing.T) {
		err := p.Init(ctx, eddyplugin.Installation{ID: "missing", Config: []byte(`{"database":"/nonexistent/GeoLite2-City.mmdb"}`)})
		if err == nil || !strings.Contains(err.Error(), "config.database") {
			t.Fatalf("Init error = %v, want one naming config.database", err)
		}
		if err := p.Close(ctx, "missing"); err != nil {
			t.Fatalf("Close after a failed Init: %v", err)
		}
		if _, _, err := p.Process(ctx, "missing", nil); err == nil || !strings.Contains(err.Error(), "unknown installation") {
			t.Fatalf("Process on a failed installation: err = %v, want unknown installation", err)
		}
	})

	t.Run("bad configurations are Init errors naming the field", func(t *testing.T) {
		for cfg, field := range map[string]string{
			`{"database":"` + world + `","truncate_ip":true,"remove_ip":true}`: "config.truncate_ip",
			`{"database":"` + world + `","languages":[]}`:                      "config.languages",
			`{"database":"` + world + `","langs":["en"]}`:                      "langs",
			`{}`: "config.database",
			`{"database":"` + filepathDir(world) + `"}`: "config.database",
		} {
			err := p.Init(ctx, eddyplugin.Installation{ID: "bad", Config: []byte(cfg)})
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("Init(%s) error = %v, want one naming %s", cfg, err, field)
			}
		}
	})

	t.Run("unknown installation is an error", func(t *testing.T) {
		_, _, err := p.Process(ctx, "nobody", []eddyplugin.Event{{MessageID: "m", Payload: []byte(`{}`)}})
		if err == nil || !strings.Contains(err.Error(), "unknown installation") {
			t.Fatalf("err = %v, want unknown installation", err)
		}
	})

	t.Run("Close ends an installation and may be repeated", func(t *testing.T) {
		if err := p.Close(ctx, "other"); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := p.Close(ctx, "other"); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if _, _, err := p.Process(ctx, "other", nil); err == nil {
			t.Fatal("Process after Close succeeded, want an error")
		}
		if _, _, err := p.Process(ctx, "world", []eddyplugin.Event{{Payload: []byte(`{}`), IP: "81.2.69.1"}}); err != nil {
			t.Fatalf("the other installation stopped working: %v", err)
		}
	})
}

func filepathDir(p string) string { return p[:strings.LastIndex(p, "/")] }

// TestCloseWhileProcessing checks in-process that closing an installation
// waits for the batches using its database.
func TestCloseWhileProcessing(t *testing.T) {
	proc := newProcessor(discardLogger())
	ctx := context.Background()
	db := buildCityDB(t, "world.json")
	events := benchEvents(1000)
	for round := range 20 {
		id := fmt.Sprint("i", round)
		if err := proc.Init(ctx, eddyplugin.Installation{ID: id, Config: []byte(fmt.Sprintf(`{"database":%q}`, db))}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := proc.Process(ctx, id, events)
			done <- err
		}()
		if err := proc.Close(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil && !errors.Is(err, errUnknownInstallation) {
			t.Fatalf("process: %v", err)
		}
	}
}
