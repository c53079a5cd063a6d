package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// sessionsBatchTypes are the SQL types of sessionsBatchColumns.
var sessionsBatchTypes = []string{
	"bigint", "text", "uuid", "text", "text", "text",
	"timestamptz", "timestamptz", "integer", "integer",
	"text", "text", "text", "text",
	"text", "text", "text", "text", "text", "text",
	"text", "text", "text", "text", "text",
	"text", "text", "jsonb", "integer", "numeric",
	"boolean", "boolean",
}

// unnestSessionsSQL is upsertSessionsSQL reading the sessions from array
// parameters instead of eddy_sessions_batch.
var unnestSessionsSQL = func() string {
	params := make([]string, len(sessionsBatchTypes))
	for i, t := range sessionsBatchTypes {
		params[i] = fmt.Sprintf("$%d::%s[]", i+1, t)
	}
	return strings.Replace(upsertSessionsSQL, "DELETE FROM eddy_sessions_batch RETURNING *",
		"SELECT * FROM unnest("+strings.Join(params, ", ")+") AS u ("+strings.Join(sessionsBatchColumns, ", ")+")", 1)
}()

// upsertSessionsByUnnest is upsertSessions sending 32 array parameters.
func upsertSessionsByUnnest(ctx context.Context, tx pgx.Tx, final []*session.Session) error {
	n := len(final)
	rows := make([][]any, n)
	for i, s := range final {
		rows[i] = sessionRow(s, i)
	}
	args := make([]any, len(sessionsBatchColumns))
	for j := range args {
		switch rows[0][j].(type) {
		case int64:
			args[j] = column[int64](rows, j)
		case int32:
			args[j] = column[int32](rows, j)
		case string:
			args[j] = column[string](rows, j)
		case [16]byte:
			args[j] = column[[16]byte](rows, j)
		case time.Time:
			args[j] = column[time.Time](rows, j)
		case []byte:
			args[j] = column[[]byte](rows, j)
		case pgtype.Numeric:
			args[j] = column[pgtype.Numeric](rows, j)
		case bool:
			args[j] = column[bool](rows, j)
		default:
			panic(fmt.Sprintf("column %d: %T", j, rows[0][j]))
		}
	}
	_, err := tx.Exec(ctx, unnestSessionsSQL, args...)
	return err
}

func column[T any](rows [][]any, j int) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i], _ = r[j].(T) // a nil []byte stays nil
	}
	return out
}

// BenchmarkWriteSessions writes batches of 1000 session states, as the
// worker does: each batch updates the 1000 sessions of the previous one
// (one more event each), every tenth starts 1000 new ones.
func BenchmarkWriteSessions(b *testing.B) {
	const batchSize = 1000
	ctx := context.Background()
	dbURL := testenv.Database(b)
	testenv.Must(b, Migrate(ctx, dbURL), "migrate")
	s, err := Open(ctx, dbURL)
	testenv.Must(b, err, "open store")
	b.Cleanup(s.Close)
	var wsID string
	testenv.Must(b, s.pool.QueryRow(ctx, `
		INSERT INTO workspaces (slug, name, organization_id)
		VALUES ('bench', 'bench', (SELECT id FROM organizations WHERE slug = 'default')) RETURNING id::text`).Scan(&wsID), "workspace")
	ws, err := session.NewWorkspace(wsID, session.DefaultRules())
	testenv.Must(b, err, "session workspace")

	for _, m := range []struct {
		name   string
		upsert func(context.Context, pgx.Tx, []*session.Session) error
	}{
		{"copy", upsertSessions},
		{"unnest", upsertSessionsByUnnest},
	} {
		b.Run(m.name, func(b *testing.B) {
			var visitors []*session.Visitor
			var step int
			var changes []session.Change
			final := make([]*session.Session, 0, batchSize)
			for b.Loop() {
				b.StopTimer()
				if step%10 == 0 {
					visitors = visitors[:0]
					for i := range batchSize {
						visitors = append(visitors, ws.NewVisitor(fmt.Sprintf("%s-%d-%d", m.name, step, i)))
					}
				}
				changes, final = changes[:0], final[:0]
				for i, v := range visitors {
					e := session.Event{
						WorkspaceID: wsID, AnonymousID: v.AnonymousID(), MessageID: fmt.Sprintf("%s-%d-%d", m.name, step, i),
						Type: session.TypePage, Timestamp: time.Date(2026, 3, 2, 10, step%10, 0, 0, time.UTC),
						URL: fmt.Sprintf("https://shop.com/p/%d?utm_source=news&utm_medium=email", step), Referrer: "https://mail.example.org/",
						Campaign:  session.Campaign{Source: "news", Medium: "email"},
						UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
						Location:  session.Location{Country: "FR", City: "Lyon"},
					}
					if changes, err = v.Apply(&e, changes); err != nil {
						b.Fatal(err)
					}
				}
				for i := range changes {
					final = append(final, &changes[i].Session)
				}
				step++
				b.StartTimer()
				err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return m.upsert(ctx, tx, final) })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "sessions/s")
		})
	}
}
