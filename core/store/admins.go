package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Admin is a person who manages Eddy.
type Admin struct {
	ID, Email, Name string
	CreatedAt       time.Time
}

const adminColumns = `a.id::text, a.email, a.name, a.created_at`

func scanAdmin(row pgx.Row) (Admin, error) {
	var a Admin
	err := row.Scan(&a.ID, &a.Email, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// CountAdmins returns how many admins exist.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM admins`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// CreateAdmin adds an admin; passwordHash is already hashed (auth.HashPassword).
// An email in use (case-insensitively) is a ConflictError.
func (s *Store) CreateAdmin(ctx context.Context, email, name, passwordHash string) (Admin, error) {
	a, err := createAdmin(ctx, s.pool, email, name, passwordHash)
	if err != nil {
		return a, fmt.Errorf("create admin: %w", err)
	}
	return a, nil
}

func createAdmin(ctx context.Context, q querier, email, name, passwordHash string) (Admin, error) {
	a, err := scanAdmin(q.QueryRow(ctx, `
		INSERT INTO admins AS a (email, name, password_hash) VALUES ($1, $2, $3)
		RETURNING `+adminColumns, email, name, passwordHash))
	if isUniqueViolation(err, "admins_email_key") {
		return a, conflict("an admin with email %s exists", email)
	}
	return a, err
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AdminByEmail returns an admin and their password hash.
func (s *Store) AdminByEmail(ctx context.Context, email string) (Admin, string, error) {
	var a Admin
	var hash string
	err := s.pool.QueryRow(ctx, `
		SELECT `+adminColumns+`, a.password_hash FROM admins a WHERE lower(a.email) = lower($1)`, email).
		Scan(&a.ID, &a.Email, &a.Name, &a.CreatedAt, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, "", ErrNotFound
	}
	if err != nil {
		return a, "", fmt.Errorf("admin by email: %w", err)
	}
	return a, hash, nil
}

// CreateSession stores a console session for an admin under its token hash.
func (s *Store) CreateSession(ctx context.Context, tokenHash, adminID string, ttl time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO admin_sessions (token_hash, admin_id, expires_at) VALUES ($1, $2, now() + $3::interval)`,
		tokenHash, adminID, ttl)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionAdmin returns the admin of a live session: not past its expiry and
// seen within idle. It notes the use (at most once a minute).
func (s *Store) SessionAdmin(ctx context.Context, tokenHash string, idle time.Duration) (Admin, error) {
	a, err := scanAdmin(s.pool.QueryRow(ctx, `
		WITH live AS (
		    SELECT token_hash, admin_id, last_seen_at FROM admin_sessions
		    WHERE token_hash = $1 AND expires_at > now() AND last_seen_at > now() - $2::interval
		), seen AS (
		    UPDATE admin_sessions s SET last_seen_at = now()
		    FROM live WHERE s.token_hash = live.token_hash AND live.last_seen_at < now() - interval '1 minute'
		)
		SELECT `+adminColumns+` FROM live JOIN admins a ON a.id = live.admin_id`, tokenHash, idle))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return a, fmt.Errorf("session: %w", err)
	}
	return a, err
}

// DeleteSession ends a console session; also clears expired sessions.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE token_hash = $1 OR expires_at < now()`, tokenHash)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
