package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// The write paths compared by BenchmarkInsertEvents. copy is InsertEvents:
// COPY into a temporary table each connection keeps (ON COMMIT DELETE ROWS),
// then one statement moves the batch to event_ids and events. copy_drop
// creates the temporary table in each transaction (ON COMMIT DROP) instead.
// unnest sends the batch as 19 array parameters of that one statement.
var insertMethods = []struct {
	name   string
	insert func(s *Store, ctx context.Context, events []Event) (int64, error)
}{
	{"unnest", (*Store).insertEventsByUnnest},
	{"copy_drop", (*Store).insertEventsByCopyDrop},
	{"copy", (*Store).InsertEvents},
}

// prepareBatch does what InsertEvents does before it writes.
func (s *Store) prepareBatch(ctx context.Context, events []Event) error {
	days, err := validateEvents(events)
	if err != nil {
		return err
	}
	return s.ensurePartitions(ctx, days)
}

// unnestInsertSQL is insertEventsSQL reading the batch from array parameters.
var unnestInsertSQL = strings.Replace(insertEventsSQL, "FROM eddy_events_batch AS u", `FROM unnest(
            $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[],
            $15::text[], $16::jsonb[], $17::jsonb[], $18::jsonb[], $19::jsonb[])
        WITH ORDINALITY AS u(workspace_id, source_id, message_id, type, event,
            name, anonymous_id, user_id, group_id, previous_id,
            ts, original_ts, sent_at, received_at,
            ip, properties, context, traits, integrations, ord)`, 1)

func (s *Store) insertEventsByUnnest(ctx context.Context, events []Event) (int64, error) {
	if err := s.prepareBatch(ctx, events); err != nil {
		return 0, err
	}
	var cols eventColumns
	cols.fill(events)
	// One statement: its own transaction.
	tag, err := s.pool.Exec(ctx, unnestInsertSQL, cols.args()...)
	return tag.RowsAffected(), err
}

// eventColumns holds a batch column by column, as unnestInsertSQL takes
// it. Strings "" and empty JSON become NULL in SQL (NULLIF) or here.
type eventColumns struct {
	workspaceID, sourceID, messageID, typ, event, name []string
	anonymousID, userID, groupID, previousID, ip       []string
	timestamp, originalTimestamp, sentAt, receivedAt   []pgtype.Timestamptz
	properties, context, traits, integrations          [][]byte
}

func (c *eventColumns) fill(events []Event) {
	n := len(events)
	c.workspaceID, c.sourceID, c.messageID = make([]string, n), make([]string, n), make([]string, n)
	c.typ, c.event, c.name = make([]string, n), make([]string, n), make([]string, n)
	c.anonymousID, c.userID, c.groupID = make([]string, n), make([]string, n), make([]string, n)
	c.previousID, c.ip = make([]string, n), make([]string, n)
	c.timestamp, c.originalTimestamp = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	c.sentAt, c.receivedAt = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	c.properties, c.context = make([][]byte, n), make([][]byte, n)
	c.traits, c.integrations = make([][]byte, n), make([][]byte, n)
	for i := range events {
		e := &events[i]
		c.workspaceID[i], c.sourceID[i], c.messageID[i] = e.WorkspaceID, e.SourceID, e.MessageID
		c.typ[i], c.event[i], c.name[i] = e.Type, e.Event, e.Name
		c.anonymousID[i], c.userID[i], c.groupID[i] = e.AnonymousID, e.UserID, e.GroupID
		c.previousID[i], c.ip[i] = e.PreviousID, e.IP
		c.timestamp[i], c.originalTimestamp[i] = timestamptz(e.Timestamp), timestamptz(e.OriginalTimestamp)
		c.sentAt[i], c.receivedAt[i] = timestamptz(e.SentAt), timestamptz(e.ReceivedAt)
		c.properties[i], c.context[i] = jsonOrNil(e.Properties), jsonOrNil(e.Context)
		c.traits[i], c.integrations[i] = jsonOrNil(e.Traits), jsonOrNil(e.Integrations)
	}
}

// args returns the columns in the order of insertEventsSQL's parameters.
func (c *eventColumns) args() []any {
	return []any{
		c.workspaceID, c.sourceID, c.messageID, c.typ, c.event,
		c.name, c.anonymousID, c.userID, c.groupID, c.previousID,
		c.timestamp, c.originalTimestamp, c.sentAt, c.receivedAt,
		c.ip, c.properties, c.context, c.traits, c.integrations,
	}
}

func (s *Store) insertEventsByCopyDrop(ctx context.Context, events []Event) (int64, error) {
	if err := s.prepareBatch(ctx, events); err != nil {
		return 0, err
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		create := strings.Replace(createBatchTableSQL, "IF NOT EXISTS eddy_events_batch", "eddy_events_batch_drop", 1)
		create = strings.Replace(create, "ON COMMIT DELETE ROWS", "ON COMMIT DROP", 1)
		if _, err := tx.Exec(ctx, create); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"eddy_events_batch_drop"}, batchColumns,
			pgx.CopyFromSlice(len(events), func(i int) ([]any, error) { return batchRow(&events[i], i), nil }))
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, strings.Replace(insertEventsSQL, "FROM eddy_events_batch AS u", "FROM eddy_events_batch_drop AS u", 1))
		inserted = tag.RowsAffected()
		return err
	})
	return inserted, err
}

// TestInsertMethodsAgree checks that the write paths the benchmark compares
// store the same thing, so that their figures compare like with like.
func TestInsertMethodsAgree(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.Database(t)
	testenv.Must(t, Migrate(ctx, dbURL), "migrate")
	s, err := Open(ctx, dbURL)
	testenv.Must(t, err, "open")
	defer s.Close()
	gen := newEventGenerator(42, []string{newBenchUUID(rand.New(rand.NewPCG(5, 6)))})
	var want string
	for _, m := range insertMethods {
		_, err := s.pool.Exec(ctx, "TRUNCATE events, event_ids")
		testenv.Must(t, err, "truncate")
		// The same events for every method.
		gen.rng, gen.left = rand.New(rand.NewPCG(7, 8)), 0
		gen.now = func() time.Time { return time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC) }
		batch := make([]Event, 300)
		for i := range batch {
			batch[i] = gen.next()
		}
		batch = append(batch, batch[:100]...) // duplicates in the call
		if n, err := m.insert(s, ctx, batch); err != nil || n != 300 {
			t.Fatalf("%s: first insert = %d, %v; want 300, nil", m.name, n, err)
		}
		if n, err := m.insert(s, ctx, batch[50:]); err != nil || n != 0 {
			t.Fatalf("%s: second insert = %d, %v; want 0, nil", m.name, n, err)
		}
		var got string
		err = s.pool.QueryRow(ctx, `
			SELECT md5(string_agg(concat_ws('|', workspace_id, received_at, message_id, source_id, type, event,
			    name, anonymous_id, user_id, group_id, previous_id, "timestamp", original_timestamp, sent_at,
			    ip, properties, context, traits, integrations), ',' ORDER BY message_id))
			FROM events`).Scan(&got)
		testenv.Must(t, err, "digest events")
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("%s stored other rows than %s (digest %s, want %s)", m.name, insertMethods[0].name, got, want)
		}
	}
}

// secondaryIndexes are the events indexes besides none (events has no
// primary key); the dedup key on event_ids is always there.
var secondaryIndexes = []string{
	"events_workspace_timestamp_idx",
	"events_workspace_anonymous_idx",
	"events_workspace_user_idx",
	"events_received_at_brin",
}

// BenchmarkInsertEvents measures rows/s for each write method and batch
// size, with several goroutines writing at once (2 per CPU, as workers
// would), under several sets of secondary indexes on events.
//
// Select a subset with -bench, e.g. -bench 'InsertEvents/indexes=all/'.
func BenchmarkInsertEvents(b *testing.B) {
	indexSets := []struct {
		name string
		keep []string
	}{
		{"none", nil},
		{"all", secondaryIndexes},
	}
	for _, idx := range secondaryIndexes {
		indexSets = append(indexSets, struct {
			name string
			keep []string
		}{"only_" + strings.TrimPrefix(idx, "events_"), []string{idx}})
	}
	for _, set := range indexSets {
		b.Run("indexes="+set.name, func(b *testing.B) {
			ctx := context.Background()
			dbURL := testenv.Database(b)
			testenv.Must(b, Migrate(ctx, dbURL), "migrate")
			s, err := Open(ctx, dbURL)
			testenv.Must(b, err, "open")
			defer s.Close()
			for _, idx := range secondaryIndexes {
				keep := false
				for _, k := range set.keep {
					keep = keep || k == idx
				}
				if !keep {
					_, err := s.pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{idx}.Sanitize())
					testenv.Must(b, err, "drop index %s", idx)
				}
			}
			for _, m := range insertMethods {
				for _, size := range []int{500, 2000} {
					b.Run(fmt.Sprintf("method=%s/batch=%d", m.name, size), func(b *testing.B) {
						benchmarkInsert(b, s, size, m.insert)
					})
				}
			}
		})
	}
}

func benchmarkInsert(b *testing.B, s *Store, size int, insert func(*Store, context.Context, []Event) (int64, error)) {
	ctx := context.Background()
	_, err := s.pool.Exec(ctx, "TRUNCATE events, event_ids")
	testenv.Must(b, err, "truncate")
	_, err = s.pool.Exec(ctx, "CHECKPOINT")
	testenv.Must(b, err, "checkpoint")
	workspaces := []string{newBenchUUID(rand.New(rand.NewPCG(1, 2))), newBenchUUID(rand.New(rand.NewPCG(3, 4)))}
	var seed atomic.Uint64
	var rows, payload atomic.Int64
	serverBefore, err := backendCPU(s)
	testenv.Must(b, err, "server CPU")
	clientBefore := processCPU()
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		gen := newEventGenerator(seed.Add(1), workspaces)
		batch := make([]Event, size)
		for pb.Next() {
			for i := range batch {
				batch[i] = gen.next()
			}
			n, err := insert(s, ctx, batch)
			if err != nil {
				b.Errorf("insert: %v", err)
				return
			}
			if n != int64(size) {
				b.Errorf("inserted %d rows, want %d", n, size)
			}
			rows.Add(n)
			payload.Add(gen.bytes)
			gen.bytes = 0
		}
	})
	b.StopTimer()
	n := float64(max(rows.Load(), 1))
	clientCPU := processCPU() - clientBefore
	serverAfter, err := backendCPU(s)
	testenv.Must(b, err, "server CPU")
	var serverCPU time.Duration
	for pid, t := range serverAfter {
		serverCPU += t - serverBefore[pid]
	}
	b.ReportMetric(float64(rows.Load())/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(payload.Load())/n, "B/event")
	// CPU per row is what the other tenants of a shared machine disturb
	// least: capacity on 2 cores is about 2s / (server+client CPU per row).
	b.ReportMetric(float64(serverCPU.Microseconds())/n, "server-µs/row")
	b.ReportMetric(float64(clientCPU.Microseconds())/n, "client-µs/row")
}

// backendCPU returns the CPU time used so far by each server process
// serving this store's database, read from /proc (the server is local).
func backendCPU(s *Store) (map[int]time.Duration, error) {
	rows, err := s.pool.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'")
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	cpu := make(map[int]time.Duration)
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil, fmt.Errorf("read the server's CPU time (is PostgreSQL local?): %w", err)
		}
		// Fields after the command's closing parenthesis; utime and stime
		// are the 12th and 13th, in clock ticks of 10ms.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		cpu[int(pid)] = time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return cpu, nil
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// eventGenerator makes events shaped like a web shop's traffic: visitors
// with several events each, a third of them logged in, mostly track calls
// with ~100 bytes of properties and ~180 bytes of context: ~450 bytes
// of ids and JSON per event.
type eventGenerator struct {
	rng        *rand.Rand
	workspaces []string
	source     string
	visitor    string
	user       string
	left       int
	bytes      int64            // payload bytes generated (JSON and ids)
	now        func() time.Time // the receive time
}

func newEventGenerator(seed uint64, workspaces []string) *eventGenerator {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	return &eventGenerator{rng: rng, workspaces: workspaces, source: newBenchUUID(rng), now: time.Now}
}

var (
	benchEvents   = []string{"Product Viewed", "Product Added", "Cart Viewed", "Checkout Started", "Order Completed", "Signed Up", "Video Played", "Search Performed"}
	benchPages    = []string{"/", "/products/blue-running-shoes", "/cart", "/checkout", "/blog/how-to-choose-running-shoes", "/account"}
	benchProducts = []string{"Blue Running Shoes", "Trail Socks", "Water Bottle 750ml", "Running Cap"}
)

func newBenchUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (g *eventGenerator) next() Event {
	if g.left == 0 {
		g.visitor = newBenchUUID(g.rng)
		g.user = ""
		if g.rng.IntN(3) == 0 {
			g.user = fmt.Sprintf("user-%d", g.rng.IntN(1_000_000))
		}
		g.left = 1 + g.rng.IntN(20)
	}
	g.left--
	now := g.now()
	page := benchPages[g.rng.IntN(len(benchPages))]
	e := Event{
		WorkspaceID: g.workspaces[g.rng.IntN(len(g.workspaces))],
		SourceID:    g.source,
		MessageID:   newBenchUUID(g.rng),
		AnonymousID: g.visitor,
		UserID:      g.user,
		Timestamp:   now.Add(-time.Duration(g.rng.IntN(2000)) * time.Millisecond),
		ReceivedAt:  now,
		SentAt:      now.Add(-50 * time.Millisecond),
		IP:          fmt.Sprintf("%d.%d.%d.%d", 1+g.rng.IntN(223), g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254)),
		Context: fmt.Appendf(nil, `{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"path":%q,"referrer":"https://www.google.com/"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0","locale":"fr-FR"}`,
			page),
		Integrations: []byte(`{"All":true}`),
	}
	switch r := g.rng.IntN(20); {
	case r < 15:
		e.Type = "track"
		e.Event = benchEvents[g.rng.IntN(len(benchEvents))]
		e.Properties = fmt.Appendf(nil, `{"product_id":"sku-%05d","name":%q,"price":%d.99,"currency":"EUR","quantity":%d}`,
			g.rng.IntN(100000), benchProducts[g.rng.IntN(len(benchProducts))], 5+g.rng.IntN(100), 1+g.rng.IntN(3))
	case r < 19:
		e.Type = "page"
		e.Name = "Shop"
		e.Properties = fmt.Appendf(nil, `{"path":%q,"url":"https://shop.example.com%s","title":"Example Shop"}`, page, page)
	default:
		e.Type = "identify"
		e.Traits = fmt.Appendf(nil, `{"email":"visitor%d@example.com","plan":"free"}`, g.rng.IntN(1_000_000))
	}
	g.bytes += int64(len(e.Properties) + len(e.Context) + len(e.Traits) + len(e.Integrations) +
		len(e.WorkspaceID) + len(e.SourceID) + len(e.MessageID) + len(e.AnonymousID) + len(e.UserID) + len(e.Event) + len(e.Name) + len(e.IP))
	return e
}

// BenchmarkInsertEventsSustained writes b.N batches of 1000 events with all
// indexes into one growing database and logs throughput and CPU per row for
// every 200,000 rows, to show how the write cost evolves as event_ids and
// the indexes outgrow memory. Run it with a fixed count, e.g.
// -bench InsertEventsSustained -benchtime 3000x.
func BenchmarkInsertEventsSustained(b *testing.B) {
	ctx := context.Background()
	dbURL := testenv.Database(b)
	testenv.Must(b, Migrate(ctx, dbURL), "migrate")
	s, err := Open(ctx, dbURL)
	testenv.Must(b, err, "open")
	defer s.Close()
	workspaces := []string{newBenchUUID(rand.New(rand.NewPCG(1, 2))), newBenchUUID(rand.New(rand.NewPCG(3, 4)))}
	const size, window = 1000, 200_000
	var seed atomic.Uint64
	var rows atomic.Int64
	var mu sync.Mutex
	lastServer, err := backendCPU(s)
	testenv.Must(b, err, "server CPU")
	lastRows, lastTime := int64(0), time.Now()
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		gen := newEventGenerator(seed.Add(1), workspaces)
		batch := make([]Event, size)
		for pb.Next() {
			for i := range batch {
				batch[i] = gen.next()
			}
			if _, err := s.InsertEvents(ctx, batch); err != nil {
				b.Errorf("insert: %v", err)
				return
			}
			if n := rows.Add(size); n%window == 0 {
				mu.Lock()
				now := time.Now()
				server, err := backendCPU(s)
				if err != nil {
					b.Errorf("server CPU: %v", err)
				}
				var cpu time.Duration
				for pid, t := range server {
					cpu += t - lastServer[pid]
				}
				var idsSize, eventsSize string
				_ = s.pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('event_ids')),
					pg_size_pretty((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'events'::regclass))`).Scan(&idsSize, &eventsSize)
				b.Logf("rows %8d: %6.0f rows/s, server %5.1f µs/row; event_ids %s, events %s",
					n, float64(n-lastRows)/now.Sub(lastTime).Seconds(), float64(cpu.Microseconds())/float64(n-lastRows), idsSize, eventsSize)
				lastRows, lastTime, lastServer = n, now, server
				mu.Unlock()
			}
		}
	})
	b.ReportMetric(float64(rows.Load())/b.Elapsed().Seconds(), "rows/s")
}
