package eddyplugin

import (
	"log/slog"
	"os"
	"strings"
)

// stderr is the process's stderr as it was at start: go-plugin's Serve
// later points os.Stderr at a stream to Eddy, which Eddy logs as plain
// lines.
var stderr = os.Stderr

// Logger returns a logger whose records Eddy folds into its own logs with
// their level and attributes (hclog's JSON lines, which go-plugin reads
// from the plugin's stderr). Use it rather than writing to stdout, which
// would break the handshake.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}
