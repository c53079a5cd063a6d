package system

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// An invalid model in the configuration's cubes folder stops Eddy at
// start, naming the file, the line and the reason; a valid folder starts
// it with that folder's cubes.
func TestInvalidCubesStopEddyAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := "cubes:\n  - name: broken\n    sql_table: sessions\n    measures:\n      - name: total\n        type: total\n"
	testenv.Must(t, os.WriteFile(filepath.Join(dir, "broken.yml"), []byte(bad), 0o600), "write model")
	e := newEnv(t, "")
	e.yaml += "cubes: " + dir + "\n"
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(context.Background(), e.config(e.dbURL, e.redisURL), server.AllRoles, log)
	if err == nil {
		srv.Close()
		t.Fatal("Eddy started with an invalid model")
	}
	if want := `broken.yml:6: measure "total": type "total" is not one of`; !strings.Contains(err.Error(), want) {
		t.Fatalf("start error %q, want it to say %q", err, want)
	}

	good := "cubes:\n  - name: visits\n    sql_table: sessions\n    measures:\n      - name: count\n        type: count\n    dimensions:\n      - name: id\n        sql: \"{CUBE}.id\"\n        type: string\n        primary_key: true\n"
	testenv.Must(t, os.WriteFile(filepath.Join(dir, "broken.yml"), []byte(good), 0o600), "write model")
	srv, err = server.New(context.Background(), e.config(e.dbURL, e.redisURL), server.AllRoles, log)
	testenv.Must(t, err, "start with a valid folder")
	srv.Close()
}
