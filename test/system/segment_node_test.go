package system

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// The official @segment/analytics-node SDK, pointed at Eddy, works: its
// track, identify and page calls are stored with their fields.
func TestSegmentAnalyticsNodeSDK(t *testing.T) {
	if _, err := os.Stat("../segment-node/node_modules/@segment/analytics-node"); err != nil {
		t.Fatalf("@segment/analytics-node is not installed (make test runs npm ci in test/segment-node): %v", err)
	}
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	runID := testenv.RandomName("")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "send.mjs")
	cmd.Dir = "../segment-node"
	cmd.Env = append(os.Environ(), "EDDY_URL="+base, "EDDY_WRITE_KEY="+e.writeKey, "EDDY_RUN_ID="+runID)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node send.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var out struct {
		Sent       int      `json:"sent"`
		MessageIDs []string `json:"messageIds"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &out); err != nil || out.Sent != 5 || len(out.MessageIDs) != 5 {
		t.Fatalf("send.mjs printed %q (%v); want 5 message ids", stdout.String(), err)
	}
	want := map[string]bool{}
	for _, id := range out.MessageIDs {
		want[id] = true
	}
	e.waitStored(want, 30*time.Second)

	conn, err := pgx.Connect(ctx, e.dbURL)
	testenv.Must(t, err, "connect")
	defer conn.Close(ctx)
	type row struct {
		typ, event, name, user, anon string
		props, traits, lib           string
	}
	rows, err := conn.Query(ctx, `SELECT type, coalesce(event,''), coalesce(name,''), coalesce(user_id,''), coalesce(anonymous_id,''),
		coalesce(properties->>'run',''), coalesce(traits->>'email',''), coalesce(context#>>'{library,name}','')
		FROM events ORDER BY type, event`)
	testenv.Must(t, err, "query")
	var got []row
	for rows.Next() {
		var r row
		testenv.Must(t, rows.Scan(&r.typ, &r.event, &r.name, &r.user, &r.anon, &r.props, &r.traits, &r.lib), "scan")
		got = append(got, r)
	}
	user, anon := "node-user-"+runID, "node-anon-"+runID
	wantRows := []row{
		{"identify", "", "", user, "", "", "node-" + runID + "@example.com", "@segment/analytics-node"},
		{"page", "", "Home", "", anon, "", "", "@segment/analytics-node"},
		{"track", "Node Test 1", "", user, "", runID, "", "@segment/analytics-node"},
		{"track", "Node Test 2", "", user, "", runID, "", "@segment/analytics-node"},
		{"track", "Node Test 3", "", user, "", runID, "", "@segment/analytics-node"},
	}
	if len(got) != len(wantRows) {
		t.Fatalf("stored rows %+v, want %+v", got, wantRows)
	}
	for i := range wantRows {
		if got[i] != wantRows[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], wantRows[i])
		}
	}
}
