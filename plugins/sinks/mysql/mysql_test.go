package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// mariaAddr is the MariaDB every test needs (root, no password).
const mariaAddr = "127.0.0.1:3306"

// testDB opens a direct connection to the test database, failing the test
// when MariaDB is not there.
func testDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", "root@tcp("+mariaAddr+")/test?parseTime=true&loc=UTC")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("these tests need MariaDB at %s (user root, no password, database test): %v", mariaAddr, err)
	}
	return db
}

// uniqueTable returns a fresh table name, dropped at the test's end.
func uniqueTable(t *testing.T, db *sql.DB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "eddy_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS `" + name + "`"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

func cfgJSON(dsn, table string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"dsn":%q,"table":%q%s}`, dsn, table, extra))
}

func initInstallation(t *testing.T, p *pluginhost.Process, id, workspace string, cfg []byte) {
	t.Helper()
	in := eddyplugin.Installation{ID: id, PluginID: "sink.mysql", WorkspaceID: workspace, Config: cfg}
	if err := p.Init(plugintest.Context(t, 20*time.Second), in); err != nil {
		t.Fatalf("init %s: %v", id, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background(), id) })
}

func write(t *testing.T, p *pluginhost.Process, id string, evs []eddyplugin.Event) eddyplugin.WriteResult {
	t.Helper()
	res, err := p.Write(plugintest.Context(t, 30*time.Second), id, evs)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

var baseTime = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func events(n int, workspace, prefix string) []eddyplugin.Event {
	out := make([]eddyplugin.Event, n)
	for i := range out {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		out[i] = eddyplugin.Event{
			MessageID: id, WorkspaceID: workspace, SourceID: "src1", Type: "track",
			Timestamp: baseTime.Add(time.Duration(i) * time.Second), ReceivedAt: baseTime.Add(time.Minute),
			Payload: []byte(fmt.Sprintf(`{"type":"track","messageId":%q,"event":"Signed Up","userId":"u%d","properties":{"n":%d}}`, id, i, i)),
		}
	}
	return out
}

func ids(evs []eddyplugin.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.MessageID
	}
	return out
}

func count(t *testing.T, db *sql.DB, table, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM `"+table+"` "+where, args...).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// jsonEqual compares two JSON texts by meaning.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("stored JSON %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

// TestMySQLSink runs the plugin as Eddy does (its own process, over gRPC)
// against the real MariaDB.
func TestMySQLSink(t *testing.T) {
	db := testDB(t)
	p := plugintest.Start(t, ".")
	dsn := "root@tcp(" + mariaAddr + ")/test"

	t.Run("creates the table and writes rows with their values", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "values", "ws1", cfgJSON(dsn, table, ""))
		evs := []eddyplugin.Event{
			{MessageID: "m1", WorkspaceID: "ws1", SourceID: "src1", Type: "track", Timestamp: baseTime, ReceivedAt: baseTime.Add(time.Second),
				Payload:      []byte(`{"type":"track","messageId":"m1","event":"Order Completed","anonymousId":"anon-1","userId":42,"properties":{"total":9.5,"items":["a"]},"context":{"locale":"en-GB"}}`),
				BatchContext: []byte(`{"library":{"name":"analytics-node"},"locale":"fr-FR"}`)},
			{MessageID: "m2", WorkspaceID: "ws1", SourceID: "src2", Type: "identify", Timestamp: baseTime, ReceivedAt: baseTime,
				Payload: []byte(`{"type":"identify","messageId":"m2","userId":"u-2","event":"ignored","traits":{"plan":"pro"}}`)},
		}
		if res := write(t, p, "values", evs); len(res.Retry)+len(res.Rejected) != 0 {
			t.Fatalf("result %+v, want all delivered", res)
		}
		type stored struct {
			ws, src, typ                  string
			event, anon, user, props, ctx sql.NullString
			ts, received                  sql.NullTime
			payload                       string
		}
		read := func(id string) stored {
			var s stored
			err := db.QueryRow("SELECT workspace_id, source_id, type, event, anonymous_id, user_id, properties, context, `timestamp`, received_at, payload FROM `"+table+"` WHERE message_id = ?", id).
				Scan(&s.ws, &s.src, &s.typ, &s.event, &s.anon, &s.user, &s.props, &s.ctx, &s.ts, &s.received, &s.payload)
			if err != nil {
				t.Fatalf("read row %s: %v", id, err)
			}
			return s
		}
		m1 := read("m1")
		if m1.ws != "ws1" || m1.src != "src1" || m1.typ != "track" || m1.event.String != "Order Completed" ||
			m1.anon.String != "anon-1" || m1.user.String != "42" {
			t.Errorf("row m1 = %+v", m1)
		}
		if !m1.ts.Time.Equal(baseTime) || !m1.received.Time.Equal(baseTime.Add(time.Second)) {
			t.Errorf("m1 times %v, %v; want %v, %v (microseconds kept)", m1.ts.Time, m1.received.Time, baseTime, baseTime.Add(time.Second))
		}
		if !jsonEqual(t, m1.props.String, `{"total":9.5,"items":["a"]}`) {
			t.Errorf("m1 properties %s", m1.props.String)
		}
		if !jsonEqual(t, m1.ctx.String, `{"library":{"name":"analytics-node"},"locale":"en-GB"}`) {
			t.Errorf("m1 context %s, want the batch context under the message's keys", m1.ctx.String)
		}
		if !jsonEqual(t, m1.payload, string(evs[0].Payload)) {
			t.Errorf("m1 payload %s, want the message as received", m1.payload)
		}
		m2 := read("m2")
		if m2.event.Valid || m2.props.Valid || m2.ctx.Valid || m2.anon.Valid || m2.user.String != "u-2" || m2.src != "src2" {
			t.Errorf("row m2 = %+v, want no event, properties, context or anonymous id", m2)
		}
	})

	t.Run("redelivery creates no duplicates", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "redeliver", "ws1", cfgJSON(dsn, table, `,"batch_size":3`))
		evs := events(10, "ws1", "r")
		for range 3 {
			if res := write(t, p, "redeliver", evs); len(res.Retry)+len(res.Rejected) != 0 {
				t.Fatalf("result %+v, want all delivered", res)
			}
		}
		// A batch overlapping the first.
		more := append(events(5, "ws1", "r")[3:], events(2, "ws1", "s")...)
		write(t, p, "redeliver", more)
		if n := count(t, db, table, ""); n != 12 {
			t.Errorf("%d rows after redeliveries, want 12", n)
		}
	})

	t.Run("workspaces are kept apart", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "ws-a", "wsA", cfgJSON(dsn, table, ""))
		initInstallation(t, p, "ws-b", "wsB", cfgJSON(dsn, table, ""))
		a, b := events(3, "wsA", "same"), events(3, "wsB", "same")
		b[0].Payload = []byte(`{"type":"track","messageId":"same-000","event":"B Event"}`)
		var wg sync.WaitGroup
		for _, w := range []struct {
			id  string
			evs []eddyplugin.Event
		}{{"ws-a", a}, {"ws-b", b}} {
			wg.Go(func() {
				res, err := p.Write(context.Background(), w.id, w.evs)
				if err != nil || len(res.Retry)+len(res.Rejected) != 0 {
					t.Errorf("write %s: %+v, %v", w.id, res, err)
				}
			})
		}
		wg.Wait()
		for ws, n := range map[string]int{"wsA": 3, "wsB": 3} {
			if got := count(t, db, table, "WHERE workspace_id = ?", ws); got != n {
				t.Errorf("workspace %s has %d rows, want %d", ws, got, n)
			}
		}
		var ev string
		if err := db.QueryRow("SELECT event FROM `" + table + "` WHERE workspace_id = 'wsB' AND message_id = 'same-000'").Scan(&ev); err != nil || ev != "B Event" {
			t.Errorf("wsB's same-000 event = %q (%v), want its own value", ev, err)
		}
	})

	t.Run("a deletion removes the person's rows in its workspace, idempotently, and keeps the others", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "del-a", "wsA", cfgJSON(dsn, table, `,"batch_size":2`))
		initInstallation(t, p, "del-b", "wsB", cfgJSON(dsn, table, ""))
		ev := func(ws, id, payload, batchCtx string) eddyplugin.Event {
			return eddyplugin.Event{MessageID: id, WorkspaceID: ws, SourceID: "src1", Type: "track", Timestamp: baseTime, ReceivedAt: baseTime,
				Payload: []byte(payload), BatchContext: []byte(batchCtx)}
		}
		person := []eddyplugin.Event{
			ev("wsA", "p-anon-1", `{"type":"track","event":"A","anonymousId":"anon-p"}`, ""),
			ev("wsA", "p-anon-2", `{"type":"track","event":"A","anonymousId":"anon-p","userId":"someone-else"}`, ""),
			ev("wsA", "p-anon-3", `{"type":"track","event":"A","anonymousId":"anon-p"}`, ""),
			ev("wsA", "p-user", `{"type":"track","event":"A","userId":"u-p"}`, ""),
			ev("wsA", "p-traits", `{"type":"identify","traits":{"email":"p@example.com"},"userId":"u-unlinked"}`, ""),
			ev("wsA", "p-context", `{"type":"track","event":"A","anonymousId":"anon-unlinked"}`, `{"traits":{"email":"p@example.com"}}`),
		}
		others := []eddyplugin.Event{
			ev("wsA", "o-anon", `{"type":"track","event":"A","anonymousId":"anon-o"}`, ""),
			ev("wsA", "o-user", `{"type":"track","event":"A","userId":"u-o","properties":{"note":"anon-p"}}`, ""),
			ev("wsA", "o-email", `{"type":"identify","traits":{"email":"P@example.com"},"userId":"u-o"}`, ""),
			ev("wsA", "o-prefix", `{"type":"track","event":"A","anonymousId":"anon-p2"}`, ""),
		}
		write(t, p, "del-a", append(slices.Clone(person), others...))
		write(t, p, "del-b", []eddyplugin.Event{ev("wsB", "b-anon", `{"type":"track","event":"A","anonymousId":"anon-p"}`, "")})
		d := eddyplugin.Deletion{JobID: "job-1", Identities: []eddyplugin.Identity{
			{Kind: "anonymous_id", Value: "anon-p"}, {Kind: "user_id", Value: "u-p"}, {Kind: "email", Value: "p@example.com"}, {Kind: "phone", Value: "+1"}}}
		for range 2 { // a repeated deletion changes nothing
			res, err := p.Delete(plugintest.Context(t, 30*time.Second), "del-a", d)
			if err != nil || res != (eddyplugin.DeleteResult{}) {
				t.Fatalf("delete = %+v, %v; want done", res, err)
			}
		}
		var left []string
		rows, err := db.Query("SELECT message_id FROM `" + table + "` WHERE workspace_id = 'wsA' ORDER BY message_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			left = append(left, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if want := []string{"o-anon", "o-email", "o-prefix", "o-user"}; !slices.Equal(left, want) {
			t.Errorf("workspace A keeps %v, want only the others' rows %v", left, want)
		}
		if n := count(t, db, table, "WHERE workspace_id = 'wsB'"); n != 1 {
			t.Errorf("workspace B has %d rows, want its 1: a deletion is the workspace's own", n)
		}
		if res, err := p.Delete(context.Background(), "del-a", eddyplugin.Deletion{JobID: "job-2"}); err != nil || res != (eddyplugin.DeleteResult{}) {
			t.Errorf("a deletion without identities = %+v, %v; want done, deleting nothing", res, err)
		}
		if n := count(t, db, table, ""); n != 5 {
			t.Errorf("%d rows after a deletion without identities, want 5", n)
		}
	})

	t.Run("rows refused for good are rejected alone", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "refused", "ws1", cfgJSON(dsn, table, `,"batch_size":4`))
		evs := events(9, "ws1", "x")
		evs[2].Payload = []byte(`{"type":"track","messageId":"x-002",`)                        // refused by the sink
		evs[5].Payload = []byte(`{"type":"track","event":"` + strings.Repeat("e", 300) + `"}`) // refused by the database
		evs[7].MessageID = strings.Repeat("k", 65)                                             // too long a key
		res := write(t, p, "refused", evs)
		got := map[string]string{}
		for _, r := range res.Rejected {
			got[r.MessageID] = r.Reason
		}
		if len(res.Retry) != 0 || len(got) != 3 {
			t.Fatalf("result %+v, want exactly 3 rejected", res)
		}
		for id, want := range map[string]string{
			"x-002": "payload is not a JSON object", "x-005": "Data too long for column 'event'", evs[7].MessageID: "message id is longer than 64",
		} {
			if !strings.Contains(got[id], want) {
				t.Errorf("rejection of %s: %q, want it to contain %q", id, got[id], want)
			}
		}
		if n := count(t, db, table, ""); n != 6 {
			t.Errorf("%d rows, want the 6 good events", n)
		}
		if n := count(t, db, table, "WHERE message_id IN ('x-002','x-005')"); n != 0 {
			t.Errorf("%d refused rows stored", n)
		}
	})

	t.Run("an unreachable database is retried, never rejected", func(t *testing.T) {
		table := uniqueTable(t, db)
		// Refused at Init: nothing listens on port 1.
		err := p.Init(plugintest.Context(t, 20*time.Second), eddyplugin.Installation{ID: "port1", WorkspaceID: "ws1",
			Config: cfgJSON("root:hunter2-secret@tcp(127.0.0.1:1)/test", table, "")})
		if err == nil || !strings.Contains(err.Error(), "connect to root@tcp(127.0.0.1:1)/test") {
			t.Fatalf("init with port 1: %v, want a connection error naming the address", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("init error %q holds the password", err)
		}

		// Lost after Init: through a proxy the test stops and restarts.
		px := startProxy(t, mariaAddr)
		initInstallation(t, p, "lost", "ws1", cfgJSON("root@tcp("+px.addr+")/test", table, `,"batch_size":2`))
		if res := write(t, p, "lost", events(2, "ws1", "before")); len(res.Retry)+len(res.Rejected) != 0 {
			t.Fatalf("result %+v before the outage, want all delivered", res)
		}
		px.stop()
		evs := events(5, "ws1", "during")
		res, err := p.Write(plugintest.Context(t, 60*time.Second), "lost", evs)
		t.Logf("write during the outage: %+v, %v", res, err)
		if len(res.Rejected) != 0 || (err == nil && !slices.Equal(res.Retry, ids(evs))) {
			t.Fatalf("write during the outage: %+v, %v; want an error or every event in Retry", res, err)
		}
		fe, err := p.Validate(plugintest.Context(t, 20*time.Second), "lost")
		if err != nil || len(fe) != 1 || fe[0].Field != "config.dsn" || !strings.Contains(fe[0].Message, "cannot connect") {
			t.Errorf("validate during the outage: %+v, %v; want one config.dsn error", fe, err)
		}
		px.restart(t)
		if res := write(t, p, "lost", evs); len(res.Retry)+len(res.Rejected) != 0 {
			t.Fatalf("result %+v after the outage, want all delivered", res)
		}
		if n := count(t, db, table, ""); n != 7 {
			t.Errorf("%d rows, want 7", n)
		}
	})

	t.Run("a failure after some chunks retries only the rest", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "partial", "ws1", cfgJSON(dsn, table, `,"batch_size":2`))
		// A server error that is not about the row's data (like a lost
		// lock or a full disk) on the third chunk.
		_, err := db.Exec("CREATE TRIGGER `" + table + "_fail` BEFORE INSERT ON `" + table + "` FOR EACH ROW " +
			"IF NEW.message_id = 'p-004' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'simulated server trouble'; END IF")
		if err != nil {
			t.Fatalf("create trigger: %v", err)
		}
		evs := events(7, "ws1", "p")
		res := write(t, p, "partial", evs)
		if len(res.Rejected) != 0 || !slices.Equal(res.Retry, ids(evs[4:])) {
			t.Fatalf("result %+v, want p-004 to p-006 in Retry and nothing rejected", res)
		}
		if n := count(t, db, table, ""); n != 4 {
			t.Errorf("%d rows, want the 4 of the chunks before the failure", n)
		}
	})

	t.Run("validate reports a wrong password without echoing it", func(t *testing.T) {
		table := uniqueTable(t, db)
		initInstallation(t, p, "valid", "ws1", cfgJSON(dsn, table, ""))
		if fe, err := p.Validate(plugintest.Context(t, 10*time.Second), "valid"); err != nil || len(fe) != 0 {
			t.Errorf("validate a working installation: %+v, %v", fe, err)
		}
		err := p.Init(plugintest.Context(t, 20*time.Second), eddyplugin.Installation{ID: "badpw", WorkspaceID: "ws1",
			Config: cfgJSON("root:Wrong-Pa55word@tcp("+mariaAddr+")/test", table, "")})
		if err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Fatalf("init with a wrong password: %v, want access denied", err)
		}
		if strings.Contains(err.Error(), "Wrong-Pa55word") {
			t.Errorf("error %q holds the password", err)
		}
	})

	t.Run("bad configuration is refused at Init", func(t *testing.T) {
		table := uniqueTable(t, db)
		if _, err := db.Exec("CREATE TABLE `" + table + "` (id INT PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, config, want string
		}{
			{"hyphen in table", `{"dsn":"` + dsn + `","table":"eddy-events"}`, "config.table"},
			{"injection in table", `{"dsn":"` + dsn + "\",\"table\":\"x`; DROP TABLE y; --\"}", "config.table"},
			{"leading digit", `{"dsn":"` + dsn + `","table":"1events"}`, "config.table"},
			{"table too long", `{"dsn":"` + dsn + `","table":"` + strings.Repeat("t", 65) + `"}`, "config.table"},
			{"foreign table", `{"dsn":"` + dsn + `","table":"` + table + `"}`, "config.table: table " + table + " is not usable"},
			{"missing dsn", `{"table":"ok"}`, "config.dsn: is required"},
			{"no database", `{"dsn":"root@tcp(` + mariaAddr + `)/"}`, "config.dsn: must name a database"},
			{"unparsable dsn", `{"dsn":"root:pw@tcp(127.0.0.1:3306/test"}`, "config.dsn: not a valid go-sql-driver DSN"},
			{"batch size", `{"dsn":"` + dsn + `","batch_size":0}`, "config.batch_size"},
			{"unknown field", `{"dsn":"` + dsn + `","user":"root"}`, `unknown field "user"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := p.Init(plugintest.Context(t, 20*time.Second), eddyplugin.Installation{ID: "bad", WorkspaceID: "ws1", Config: []byte(tc.config)})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("init error %v, want one containing %q", err, tc.want)
				}
			})
		}
		if _, err := p.Write(context.Background(), "bad", events(1, "ws1", "x")); err == nil {
			t.Error("write to an installation whose Init failed succeeded")
		}
		if err := p.Close(context.Background(), "bad"); err != nil {
			t.Errorf("close after a failed init: %v", err)
		}
	})
}

// proxy forwards TCP connections to a target, and can be stopped (every
// connection cut) and restarted on the same address.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{addr: ln.Addr().String(), target: target}
	px.serve(ln)
	t.Cleanup(px.stop)
	return px
}

func (px *proxy) serve(ln net.Listener) {
	px.mu.Lock()
	px.ln = ln
	px.mu.Unlock()
	px.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", px.target)
			if err != nil {
				c.Close()
				continue
			}
			px.mu.Lock()
			px.conns = append(px.conns, c, up)
			px.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	})
}

func (px *proxy) stop() {
	px.mu.Lock()
	if px.ln != nil {
		px.ln.Close()
		px.ln = nil
	}
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
	px.mu.Unlock()
	px.wg.Wait()
}

func (px *proxy) restart(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", px.addr)
	if err != nil {
		t.Fatalf("restart proxy on %s: %v", px.addr, err)
	}
	px.serve(ln)
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantErr      string
	}{
		{"defaults", `{"dsn":"root@tcp(127.0.0.1:3306)/test"}`, ""},
		{"all fields", `{"dsn":"u:p@tcp(db:3306)/a?timeout=2s","table":"_Events_2","batch_size":5000}`, ""},
		{"batch too big", `{"dsn":"root@tcp(127.0.0.1:3306)/test","batch_size":5001}`, "config.batch_size: must be between 1 and 5000"},
		{"trailing data", `{"dsn":"root@tcp(127.0.0.1:3306)/test"}x`, "unexpected data"},
		{"empty table", `{"dsn":"root@tcp(127.0.0.1:3306)/test","table":""}`, "config.table"},
		{"backtick", "{\"dsn\":\"root@tcp(127.0.0.1:3306)/test\",\"table\":\"a`b\"}", "config.table"},
		{"unparsable dsn keeps password out", `{"dsn":"user:S3cr3t-pw@tcp(db:3306/x"}`, "config.dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseConfig([]byte(tc.config))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parseConfig: %v", err)
				}
				if s.db.Params["sql_mode"] != strictMode || s.db.Timeout == 0 {
					t.Errorf("defaults not applied: sql_mode %q timeout %v", s.db.Params["sql_mode"], s.db.Timeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "S3cr3t") {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
	s, err := parseConfig([]byte(`{"dsn":"root@tcp(127.0.0.1:3306)/test?timeout=2s&sql_mode=ANSI"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.table != "eddy_events" || s.batchSize != 500 || s.db.Timeout != 2*time.Second || s.db.Params["sql_mode"] != "ANSI" {
		t.Errorf("settings %+v: want defaults, and the DSN's own timeout and sql_mode kept", s)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"root:pw@tcp(h:1)/d", "pw"},
		{"root:p@ss@tcp(h:1)/d", "p@ss"},
		{"root@tcp(h:1)/d", ""},
		{"no at sign", ""},
	} {
		if got := passwordOf(tc.dsn); got != tc.want {
			t.Errorf("passwordOf(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
	if got := redact("dial root:pw failed", "pw"); got != "dial root:[redacted] failed" {
		t.Errorf("redact = %q", got)
	}
	if got := describe(&mysql.Config{User: "u", Passwd: "secret", Net: "tcp", Addr: "h:3306", DBName: "d"}); got != "u@tcp(h:3306)/d" {
		t.Errorf("describe = %q", got)
	}
}

func TestMergeContext(t *testing.T) {
	for _, tc := range []struct{ batch, own, want string }{
		{"", "", ""},
		{"", `{"a":1}`, `{"a":1}`},
		{`{"a":1,"b":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{`{"a":1}`, "", `{"a":1}`},
		{`{"a":1}`, "null", `{"a":1}`},
		{`{"a":1}`, `"odd"`, `"odd"`},
		{`[1]`, `{"a":1}`, `{"a":1}`},
	} {
		got, err := mergeContext(json.RawMessage(tc.batch), json.RawMessage(tc.own))
		if err != nil || string(got) != tc.want {
			t.Errorf("mergeContext(%s, %s) = %s, %v; want %s", tc.batch, tc.own, got, err, tc.want)
		}
	}
}

// BenchmarkWrite measures writes of 500 new events through the plugin
// process into MariaDB.
func BenchmarkWrite(b *testing.B) {
	db, err := sql.Open("mysql", "root@tcp("+mariaAddr+")/test")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("eddy_bench_%d", time.Now().UnixNano())
	defer db.Exec("DROP TABLE IF EXISTS `" + name + "`")
	p := plugintest.Start(b, ".")
	if err := p.Init(context.Background(), eddyplugin.Installation{ID: "bench", WorkspaceID: "ws1",
		Config: cfgJSON("root@tcp("+mariaAddr+")/test", name, "")}); err != nil {
		b.Fatalf("init: %v (MariaDB at %s is required)", err, mariaAddr)
	}
	b.ResetTimer()
	for i := range b.N {
		res, err := p.Write(context.Background(), "bench", events(500, "ws1", fmt.Sprintf("b%d", i)))
		if err != nil || len(res.Retry)+len(res.Rejected) != 0 {
			b.Fatalf("write: %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}
