package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// connectTimeout bounds Init's and Validate's round trips to the database.
const connectTimeout = 10 * time.Second

// columns are the table's columns, in the order rows are inserted.
var columns = []string{"workspace_id", "message_id", "source_id", "type", "event", "anonymous_id", "user_id",
	"timestamp", "received_at", "properties", "context", "payload"}

// createTable is the table's definition, with %s its quoted name. The
// types suit both MySQL 8 and MariaDB 10.11 (where JSON is LONGTEXT with a
// JSON_VALID check). utf8mb4_bin compares ids byte for byte.
const createTable = "CREATE TABLE IF NOT EXISTS %s (\n" +
	"  `workspace_id` VARCHAR(64) NOT NULL,\n" +
	"  `message_id` VARCHAR(64) NOT NULL,\n" +
	"  `source_id` VARCHAR(64) NOT NULL,\n" +
	"  `type` VARCHAR(16) NOT NULL,\n" +
	"  `event` VARCHAR(255) NULL,\n" +
	"  `anonymous_id` VARCHAR(255) NULL,\n" +
	"  `user_id` VARCHAR(255) NULL,\n" +
	"  `timestamp` DATETIME(6) NULL,\n" +
	"  `received_at` DATETIME(6) NULL,\n" +
	"  `properties` JSON NULL,\n" +
	"  `context` JSON NULL,\n" +
	"  `payload` JSON NOT NULL,\n" +
	"  PRIMARY KEY (`workspace_id`, `message_id`),\n" +
	"  KEY `received_at_idx` (`workspace_id`, `received_at`),\n" +
	"  KEY `anonymous_id_idx` (`workspace_id`, `anonymous_id`),\n" +
	"  KEY `user_id_idx` (`workspace_id`, `user_id`)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// sink implements eddyplugin.Sink for every installation of the process.
type sink struct {
	log *slog.Logger

	installs eddyplugin.Installations[*installation]
}

var _ eddyplugin.Deleter = (*sink)(nil)

// installation is one configured table with its connection pool.
type installation struct {
	id, workspaceID string
	cfg             *settings
	db              *sql.DB
	table           string // quoted
}

func newSink(log *slog.Logger) *sink {
	return &sink{log: log}
}

// Init connects to the database, creates the table if missing and checks
// that it has the sink's columns.
func (s *sink) Init(ctx context.Context, in eddyplugin.Installation) error {
	if in.ID == "" {
		return errors.New("init: installation id is empty")
	}
	cfg, err := parseConfig(in.Config)
	if err != nil {
		return fmt.Errorf("init installation %s: %w", in.ID, err)
	}
	conn, err := mysql.NewConnector(cfg.db)
	if err != nil {
		return fmt.Errorf("init installation %s: config.dsn: %s", in.ID, redact(err.Error(), cfg.db.Passwd))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	inst := &installation{id: in.ID, workspaceID: in.WorkspaceID, cfg: cfg, db: db, table: "`" + cfg.table + "`"}

	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("init installation %s: connect to %s: %s", in.ID, describe(cfg.db), redact(err.Error(), cfg.db.Passwd))
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(createTable, inst.table)); err != nil {
		db.Close()
		return fmt.Errorf("init installation %s: create table %s: %s", in.ID, cfg.table, redact(err.Error(), cfg.db.Passwd))
	}
	if err := inst.checkTable(ctx); err != nil {
		db.Close()
		return fmt.Errorf("init installation %s: %w", in.ID, err)
	}

	if old, ok := s.installs.Put(in.ID, inst); ok {
		old.db.Close()
	}
	s.log.Info("mysql installation ready", "installation_id", in.ID, "workspace_id", in.WorkspaceID,
		"database", describe(cfg.db), "table", cfg.table, "batch_size", cfg.batchSize)
	return nil
}

// checkTable reads none of the table's rows but every column the sink
// writes, so a table of the same name made for something else is found
// at once rather than at every write.
func (i *installation) checkTable(ctx context.Context) error {
	q := "SELECT `" + strings.Join(columns, "`, `") + "` FROM " + i.table + " LIMIT 0"
	rows, err := i.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("config.table: table %s is not usable by the sink (it needs the columns %s): %s",
			i.cfg.table, strings.Join(columns, ", "), redact(err.Error(), i.cfg.db.Passwd))
	}
	return rows.Close()
}

// Validate pings the database and checks the table.
func (s *sink) Validate(ctx context.Context, installationID string) ([]eddyplugin.FieldError, error) {
	inst, err := s.installation(installationID)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := inst.db.PingContext(ctx); err != nil {
		return []eddyplugin.FieldError{{Field: "config.dsn", Message: fmt.Sprintf("cannot connect to %s: %s",
			describe(inst.cfg.db), redact(err.Error(), inst.cfg.db.Passwd))}}, nil
	}
	if err := inst.checkTable(ctx); err != nil {
		return []eddyplugin.FieldError{{Field: "config.table", Message: strings.TrimPrefix(err.Error(), "config.table: ")}}, nil
	}
	return nil, nil
}

// Close closes an installation's pool; it is safe for one never
// initialised.
func (s *sink) Close(_ context.Context, installationID string) error {
	inst, ok := s.installs.Delete(installationID)
	if !ok {
		return nil
	}
	if err := inst.db.Close(); err != nil {
		return fmt.Errorf("close installation %s: %s", installationID, redact(err.Error(), inst.cfg.db.Passwd))
	}
	return nil
}

func (s *sink) installation(id string) (*installation, error) { return s.installs.Get(id) }

// Write inserts events in chunks of batch_size rows. Events that cannot be
// rows, and rows the database refuses for good, are rejected; after a
// connection failure the undelivered events are left to Eddy: in Retry when
// some rows were committed, as an error (the whole batch again, harmless
// since inserts are idempotent) when none were.
func (s *sink) Write(ctx context.Context, installationID string, events []eddyplugin.Event) (eddyplugin.WriteResult, error) {
	var res eddyplugin.WriteResult
	inst, err := s.installation(installationID)
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	rows := make([]row, 0, len(events))
	for _, e := range events {
		r, err := newRow(e, inst.workspaceID)
		if err != nil {
			res.Rejected = append(res.Rejected, eddyplugin.Rejection{MessageID: e.MessageID, Reason: err.Error()})
			continue
		}
		rows = append(rows, r)
	}
	committed := 0
	for start := 0; start < len(rows); start += inst.cfg.batchSize {
		chunk := rows[start:min(start+inst.cfg.batchSize, len(rows))]
		rejected, done, err := inst.insert(ctx, chunk)
		res.Rejected = append(res.Rejected, rejected...)
		committed += done - len(rejected)
		if err == nil {
			continue
		}
		msg := redact(err.Error(), inst.cfg.db.Passwd)
		if ctx.Err() != nil || committed == 0 {
			s.log.Warn("mysql write failed, batch to retry", "installation_id", inst.id, "table", inst.cfg.table,
				"events", len(events), "error", msg)
			return eddyplugin.WriteResult{}, fmt.Errorf("write to %s table %s: %s", describe(inst.cfg.db), inst.cfg.table, msg)
		}
		for _, r := range rows[start+done:] {
			res.Retry = append(res.Retry, r.messageID)
		}
		s.log.Warn("mysql write failed, events to retry", "installation_id", inst.id, "table", inst.cfg.table,
			"retry", len(res.Retry), "error", msg)
		return res, nil
	}
	if len(res.Rejected) > 0 {
		s.log.Warn("mysql refused events", "installation_id", inst.id, "table", inst.cfg.table, "rejected", len(res.Rejected))
	}
	return res, nil
}

// emailPaths are where a message carries an email address: an identify's
// traits, or the traits in its context (the context column holds the
// batch's context merged in).
var emailPaths = []struct{ column, path string }{
	{"payload", "$.traits.email"},
	{"context", "$.traits.email"},
}

// Delete removes the rows of a deleted person from the installation's
// workspace: those whose anonymous_id or user_id is one of the person's
// identifiers, and those whose message or context traits carry one of
// their emails. It deletes in chunks of batch_size rows, so that no
// transaction holds many locks; deleting rows already gone changes
// nothing, so a repeated call is harmless. Identities of other kinds are
// ignored: the table has nothing to match them against.
func (s *sink) Delete(ctx context.Context, installationID string, d eddyplugin.Deletion) (eddyplugin.DeleteResult, error) {
	inst, err := s.installation(installationID)
	if err != nil {
		return eddyplugin.DeleteResult{}, fmt.Errorf("delete: %w", err)
	}
	byKind := map[string][]any{}
	for _, id := range d.Identities {
		if id.Value != "" {
			byKind[id.Kind] = append(byKind[id.Kind], id.Value)
		}
	}
	var conds []string
	args := []any{inst.workspaceID}
	in := func(expr string, vs []any) {
		conds = append(conds, expr+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")")
		args = append(args, vs...)
	}
	if vs := byKind["anonymous_id"]; len(vs) > 0 {
		in("`anonymous_id`", vs)
	}
	if vs := byKind["user_id"]; len(vs) > 0 {
		in("`user_id`", vs)
	}
	if vs := byKind["email"]; len(vs) > 0 {
		for _, p := range emailPaths {
			in("JSON_UNQUOTE(JSON_EXTRACT(`"+p.column+"`, '"+p.path+"'))", vs)
		}
	}
	if len(conds) == 0 {
		return eddyplugin.DeleteResult{}, nil
	}
	q := "DELETE FROM " + inst.table + " WHERE `workspace_id` = ? AND (" + strings.Join(conds, " OR ") + ") LIMIT ?"
	args = append(args, inst.cfg.batchSize)
	var deleted int64
	for {
		res, err := inst.db.ExecContext(ctx, q, args...)
		if err != nil {
			msg := redact(err.Error(), inst.cfg.db.Passwd)
			// The identities are personal data: only the job is logged.
			s.log.Warn("mysql deletion failed, to retry", "installation_id", inst.id, "table", inst.cfg.table,
				"job_id", d.JobID, "deleted", deleted, "error", msg)
			return eddyplugin.DeleteResult{}, fmt.Errorf("delete from %s table %s: %s", describe(inst.cfg.db), inst.cfg.table, msg)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return eddyplugin.DeleteResult{}, fmt.Errorf("delete from table %s: %w", inst.cfg.table, err)
		}
		deleted += n
		if n < int64(inst.cfg.batchSize) {
			break
		}
	}
	s.log.Info("mysql deletion done", "installation_id", inst.id, "table", inst.cfg.table, "job_id", d.JobID, "rows", deleted)
	return eddyplugin.DeleteResult{}, nil
}

// insert writes rows in one transaction. When the database refuses a row
// for good, it splits the rows in halves until the culprits are alone and
// rejects them. It returns the rejections, how many leading rows were dealt
// with (committed or rejected), and a transient error that stopped it.
func (i *installation) insert(ctx context.Context, rows []row) ([]eddyplugin.Rejection, int, error) {
	err := i.exec(ctx, rows)
	switch {
	case err == nil:
		return nil, len(rows), nil
	case !refusedForGood(err):
		return nil, 0, err
	case len(rows) == 1:
		reason := "database refused the row: " + redact(err.Error(), i.cfg.db.Passwd)
		return []eddyplugin.Rejection{{MessageID: rows[0].messageID, Reason: reason}}, 1, nil
	}
	mid := len(rows) / 2
	rejected, done, err := i.insert(ctx, rows[:mid])
	if err != nil {
		return rejected, done, err
	}
	more, done, err := i.insert(ctx, rows[mid:])
	return append(rejected, more...), mid + done, err
}

// exec inserts rows in one multi-row statement and transaction. A row
// already present (a redelivery) is left as it was.
func (i *installation) exec(ctx context.Context, rows []row) error {
	var q strings.Builder
	q.WriteString("INSERT INTO " + i.table + " (`" + strings.Join(columns, "`, `") + "`) VALUES ")
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	args := make([]any, 0, len(rows)*len(columns))
	for n, r := range rows {
		if n > 0 {
			q.WriteString(", ")
		}
		q.WriteString(placeholders)
		args = append(args, r.args()...)
	}
	q.WriteString(" ON DUPLICATE KEY UPDATE `message_id` = `message_id`")

	tx, err := i.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("insert %d rows: %w", len(rows), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d rows: %w", len(rows), err)
	}
	return nil
}

// refusedForGood tells a row's data errors (which would fail again) from
// connection and server troubles (which may pass).
func refusedForGood(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1048, // column cannot be null
		1264, // out of range value
		1265, // data truncated
		1292, // incorrect datetime value
		1300, // invalid character string
		1366, // incorrect string value
		1367, // illegal value
		1406, // data too long
		1411, // incorrect value for function
		3140, // MySQL: invalid JSON text
		4025: // MariaDB: CHECK constraint (JSON_VALID) failed
		return true
	}
	return false
}

// row is one event as the table's columns.
type row struct {
	workspaceID, messageID, sourceID, typ string
	event, anonymousID, userID            sql.NullString
	timestamp, receivedAt                 sql.NullTime
	properties, context                   sql.NullString
	payload                               string
}

// args returns the row's values in columns order. JSON travels as text:
// MySQL refuses JSON sent as binary.
func (r row) args() []any {
	return []any{r.workspaceID, r.messageID, r.sourceID, r.typ, r.event, r.anonymousID, r.userID,
		r.timestamp, r.receivedAt, r.properties, r.context, r.payload}
}

// maxIDLen is the length of the key columns, in characters.
const maxIDLen = 64

// newRow maps an event to a row; its error is the reason to reject it.
func newRow(e eddyplugin.Event, defaultWorkspace string) (row, error) {
	r := row{workspaceID: e.WorkspaceID, messageID: e.MessageID, sourceID: e.SourceID, typ: e.Type}
	if r.workspaceID == "" {
		r.workspaceID = defaultWorkspace
	}
	switch {
	case r.messageID == "":
		return r, errors.New("message id is empty")
	case utf8.RuneCountInString(r.messageID) > maxIDLen:
		return r, fmt.Errorf("message id is longer than %d characters", maxIDLen)
	case r.workspaceID == "":
		return r, errors.New("workspace id is empty")
	case utf8.RuneCountInString(r.workspaceID) > maxIDLen:
		return r, fmt.Errorf("workspace id is longer than %d characters", maxIDLen)
	}
	p := bytes.TrimSpace(e.Payload)
	if !utf8.Valid(p) || !json.Valid(p) || len(p) == 0 || p[0] != '{' {
		return r, errors.New("payload is not a JSON object")
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(p, &msg); err != nil {
		return r, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	r.payload = string(p)
	if e.Type == "track" {
		r.event = jsonString(msg["event"])
	}
	r.anonymousID = jsonString(msg["anonymousId"])
	r.userID = jsonString(msg["userId"])
	if v := msg["properties"]; len(v) > 0 && string(v) != "null" {
		r.properties = sql.NullString{String: string(v), Valid: true}
	}
	ctx, err := mergeContext(e.BatchContext, msg["context"])
	if err != nil {
		return r, err
	}
	if ctx != nil {
		r.context = sql.NullString{String: string(ctx), Valid: true}
	}
	r.timestamp = nullTime(e.Timestamp)
	r.receivedAt = nullTime(e.ReceivedAt)
	return r, nil
}

// jsonString reads an id or name: a JSON string as is, a number as
// written (some clients send numeric user ids), anything else as NULL.
func jsonString(v json.RawMessage) sql.NullString {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return sql.NullString{}
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return sql.NullString{String: s, Valid: true}
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		return sql.NullString{String: n.String(), Valid: true}
	}
	return sql.NullString{}
}

// mergeContext returns the message's effective context: the batch's
// context with the message's own keys over it. A message context that is
// not an object wins as a whole.
func mergeContext(batch, own json.RawMessage) (json.RawMessage, error) {
	own = bytes.TrimSpace(own)
	batch = bytes.TrimSpace(batch)
	var batchCtx map[string]json.RawMessage
	if len(batch) == 0 || json.Unmarshal(batch, &batchCtx) != nil || batchCtx == nil {
		if len(own) == 0 || string(own) == "null" {
			return nil, nil
		}
		return own, nil
	}
	if len(own) > 0 && string(own) != "null" {
		var ownCtx map[string]json.RawMessage
		if err := json.Unmarshal(own, &ownCtx); err != nil {
			return own, nil
		}
		for k, v := range ownCtx {
			batchCtx[k] = v
		}
	}
	out, err := json.Marshal(batchCtx)
	if err != nil {
		return nil, fmt.Errorf("merge batch context: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}
