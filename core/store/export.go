package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/session"
)

// MaxExportEvents caps the events of a profile export; beyond it the
// export says it is truncated.
const MaxExportEvents = 100_000

// exportPage is how many events an export reads per query.
const exportPage = 1000

// ProfileExport is everything Eddy holds about one person.
type ProfileExport struct {
	// Profile is the live profile, with its identities, traits and consent
	// (each with the stamp that set it).
	Profile identity.Profile
	// MergedProfiles are the ids of the profiles merged into it, at any
	// depth; Merges the merges that joined them.
	MergedProfiles []string
	Merges         []ProfileMerge
	Sessions       []StoredSession
	PageViews      []PageView
	Orders         []ExportedOrder
	// Events are the person's events (by their anonymous and user ids),
	// oldest first, at most MaxExportEvents; Truncated tells there were
	// more.
	Events    []StoredEvent
	Truncated bool
	// ConsentDecisions are the decisions recorded on the person's
	// identifiers (through the API, or consent updates that superseded
	// one), with the identifier each is on.
	ConsentDecisions []ExportedDecision
}

// ExportedDecision is a consent decision on one of the person's
// identifiers.
type ExportedDecision struct {
	Kind, Value, Purpose string
	Granted              bool
	At                   time.Time
	Source               string
}

// ProfileMerge is one merge of the person's profiles.
type ProfileMerge struct {
	Survivor, Absorbed string
	At                 time.Time
	MessageID          string
	ViaKind, ViaValue  string
}

// ExportedOrder is an order as an export shows it.
type ExportedOrder struct {
	OrderID, MessageID, SessionID string
	AnonymousID, UserID           string
	Timestamp                     time.Time
	Total                         float64
	Currency                      string
	Products                      []byte
}

// ExportProfile returns everything workspace w holds about the person whose
// profile (or a profile merged into theirs) is profileID, or ErrNotFound.
// It reads in one snapshot under row-level security.
func (s *Store) ExportProfile(ctx context.Context, w Workspace, profileID string) (ProfileExport, error) {
	var x ProfileExport
	if !isUUID(profileID) {
		return x, ErrNotFound
	}
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('eddy.workspace_id', $2, true)`,
			workspaceRole, w.ID)
		if err != nil {
			return fmt.Errorf("open workspace transaction: %w", err)
		}
		if x.Profile, err = readProfile(ctx, tx, w.ID, profileID); err != nil {
			return err
		}
		p, err := findPerson(ctx, tx, w.ID, x.Profile.ID)
		if err != nil {
			return err
		}
		if p == nil {
			return ErrNotFound
		}
		for _, id := range p.profiles {
			if id != x.Profile.ID {
				x.MergedProfiles = append(x.MergedProfiles, id)
			}
		}
		return exportRows(ctx, tx, w.ID, p, &x)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return x, fmt.Errorf("export profile %s of %s: %w", profileID, w.Slug, err)
	}
	return x, err
}

func exportRows(ctx context.Context, tx pgx.Tx, ws string, p *person, x *ProfileExport) error {
	anons, users := p.values(identity.AnonymousID), p.values(identity.UserID)
	var err error
	if x.ConsentDecisions, err = exportDecisions(ctx, tx, ws, p); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT survivor::text, absorbed::text, at, message_id, via_kind, via_value
		FROM profile_merges WHERE workspace_id = $1 AND (survivor = ANY($2::uuid[]) OR absorbed = ANY($2::uuid[]))
		ORDER BY id`, ws, p.profiles)
	if err != nil {
		return fmt.Errorf("merges: %w", err)
	}
	if x.Merges, err = collect(rows, func(r pgx.Row) (ProfileMerge, error) {
		var m ProfileMerge
		err := r.Scan(&m.Survivor, &m.Absorbed, &m.At, &m.MessageID, &m.ViaKind, &m.ViaValue)
		return m, err
	}, "merges"); err != nil {
		return err
	}

	rows, err = tx.Query(ctx, `SELECT `+sessionColumns+` FROM sessions s WHERE s.workspace_id = $1
		AND (s.anonymous_id = ANY($2) OR s.profile_id = ANY($3))
		ORDER BY s.started_at, s.id`, ws, anons, p.profiles)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	if x.Sessions, err = collect(rows, scanSession, "sessions"); err != nil {
		return err
	}
	sessionIDs := make([]string, len(x.Sessions))
	for i, s := range x.Sessions {
		sessionIDs[i] = s.ID
	}

	rows, err = tx.Query(ctx, `SELECT message_id, session_id::text, anonymous_id, coalesce(user_id, ''), ts,
		coalesce(url, ''), coalesce(referrer, ''), coalesce(title, '')
		FROM page_views WHERE workspace_id = $1 AND session_id = ANY($2::uuid[])
		ORDER BY ts, message_id`, ws, sessionIDs)
	if err != nil {
		return fmt.Errorf("page views: %w", err)
	}
	if x.PageViews, err = collect(rows, func(r pgx.Row) (PageView, error) {
		pv := PageView{WorkspaceID: ws}
		var sid string
		err := r.Scan(&pv.MessageID, &sid, &pv.AnonymousID, &pv.UserID, &pv.Timestamp, &pv.URL, &pv.Referrer, &pv.Title)
		if err != nil {
			return pv, err
		}
		u, err := uuid.Parse(sid)
		pv.SessionID = session.ID(u)
		return pv, err
	}, "page views"); err != nil {
		return err
	}

	rows, err = tx.Query(ctx, `SELECT order_id, message_id, session_id::text, anonymous_id, coalesce(user_id, ''),
		ts, total::float8, coalesce(currency, ''), products
		FROM orders WHERE workspace_id = $1 AND session_id = ANY($2::uuid[])
		ORDER BY ts, order_id`, ws, sessionIDs)
	if err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if x.Orders, err = collect(rows, func(r pgx.Row) (ExportedOrder, error) {
		var o ExportedOrder
		err := r.Scan(&o.OrderID, &o.MessageID, &o.SessionID, &o.AnonymousID, &o.UserID, &o.Timestamp, &o.Total, &o.Currency, &o.Products)
		return o, err
	}, "orders"); err != nil {
		return err
	}

	// Events, by pages in (timestamp, message_id) order.
	var afterTS time.Time
	afterID := ""
	for len(x.Events) < MaxExportEvents+1 {
		limit := min(exportPage, MaxExportEvents+1-len(x.Events))
		rows, err := tx.Query(ctx, `
			SELECT e.message_id, coalesce((SELECT s.slug FROM sources s WHERE s.workspace_id = e.workspace_id AND s.id = e.source_id), ''),
			       e.type, coalesce(e.event, ''), coalesce(e.name, ''), coalesce(e.anonymous_id, ''), coalesce(e.user_id, ''),
			       coalesce(e.group_id, ''), coalesce(e.previous_id, ''),
			       e."timestamp", coalesce(e.original_timestamp, 'epoch'), coalesce(e.sent_at, 'epoch'), e.received_at,
			       coalesce(host(e.ip), ''), e.properties, e.context, e.traits, e.integrations
			FROM events e
			WHERE e.workspace_id = $1 AND (e.anonymous_id = ANY($2) OR e.user_id = ANY($3))
			  AND ($4::timestamptz IS NULL OR (e."timestamp", e.message_id) > ($4, $5))
			ORDER BY e."timestamp", e.message_id
			LIMIT $6`, ws, anons, users, timestamptz(afterTS), afterID, limit)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		page, err := collect(rows, func(row pgx.Row) (StoredEvent, error) {
			var e StoredEvent
			err := row.Scan(&e.MessageID, &e.SourceSlug, &e.Type, &e.Event, &e.Name, &e.AnonymousID, &e.UserID,
				&e.GroupID, &e.PreviousID, &e.Timestamp, &e.OriginalTimestamp, &e.SentAt, &e.ReceivedAt,
				&e.IP, &e.Properties, &e.Context, &e.Traits, &e.Integrations)
			e.OriginalTimestamp, e.SentAt = zeroEpoch(e.OriginalTimestamp), zeroEpoch(e.SentAt)
			return e, err
		}, "events")
		if err != nil {
			return err
		}
		x.Events = append(x.Events, page...)
		if len(page) < limit {
			break
		}
		last := page[len(page)-1]
		afterTS, afterID = last.Timestamp, last.MessageID
	}
	if len(x.Events) > MaxExportEvents {
		x.Events, x.Truncated = x.Events[:MaxExportEvents], true
	}
	return nil
}

// exportDecisions reads the consent decisions on the person's anonymous
// and user ids (kept by hash: the person's identifiers name them back).
func exportDecisions(ctx context.Context, tx pgx.Tx, ws string, p *person) ([]ExportedDecision, error) {
	byHash := map[string]identity.Identity{}
	var hashes [][]byte
	for _, id := range p.ids {
		if id.Kind != identity.AnonymousID && id.Kind != identity.UserID {
			continue
		}
		h := SuppressionHash(ws, string(id.Kind), id.Value)
		byHash[string(h)] = id
		hashes = append(hashes, h)
	}
	rows, err := tx.Query(ctx, `SELECT identifier_hash, purpose, granted, decided_at, source FROM consent_decisions
		WHERE workspace_id = $1 AND identifier_hash = ANY($2) ORDER BY decided_at, purpose`, ws, hashes)
	if err != nil {
		return nil, fmt.Errorf("consent decisions: %w", err)
	}
	return collect(rows, func(r pgx.Row) (ExportedDecision, error) {
		var h []byte
		var d ExportedDecision
		err := r.Scan(&h, &d.Purpose, &d.Granted, &d.At, &d.Source)
		id := byHash[string(h)]
		d.Kind, d.Value = string(id.Kind), id.Value
		return d, err
	}, "consent decisions")
}
