package cube

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Run runs a plan in a transaction the caller opened (the API opens it
// read-only, under the workspace's row-level security role, with a
// statement timeout) and returns Cube's data entries and, when the query
// asked for it, the total row count without limit and offset.
func Run(ctx context.Context, tx pgx.Tx, p *Plan) (data []map[string]any, total *int64, err error) {
	rows, err := tx.Query(ctx, p.SQL, p.Args...)
	if err != nil {
		return nil, nil, fmt.Errorf("run cube query: %w", err)
	}
	data = []map[string]any{}
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read cube query row: %w", err)
		}
		row, err := p.Row(values)
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read cube query row: %w", err)
		}
		data = append(data, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("run cube query: %w", err)
	}
	if p.TotalSQL != "" {
		var n int64
		if err := tx.QueryRow(ctx, p.TotalSQL, p.TotalArgs...).Scan(&n); err != nil {
			return nil, nil, fmt.Errorf("count cube query rows: %w", err)
		}
		total = &n
	}
	return data, total, nil
}
