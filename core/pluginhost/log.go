package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newLogger returns the hclog logger go-plugin wants, writing to log: the
// lines a plugin prints on stderr (hclog JSON from the SDK, or plain text)
// and go-plugin's own messages become slog records.
func newLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "plugin",
		Output:     &slogWriter{log: log},
		JSONFormat: true,
		Level:      hclog.Debug,
	})
}

// slogWriter turns hclog's JSON lines into slog records.
type slogWriter struct {
	mu  sync.Mutex
	log *slog.Logger
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			w.log.Info(line)
			continue
		}
		level := slog.LevelInfo
		switch rec["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		msg, _ := rec["@message"].(string)
		args := make([]any, 0, 2*len(rec))
		for k, v := range rec {
			if strings.HasPrefix(k, "@") {
				continue
			}
			args = append(args, k, v)
		}
		w.log.Log(context.Background(), level, msg, args...)
	}
	return len(p), nil
}

// lineWriter logs each line written to it.
type lineWriter struct {
	mu    sync.Mutex
	log   *slog.Logger
	msg   string
	level slog.Level
	buf   []byte
}

// maxLine caps a buffered line: a plugin cannot grow Eddy's memory by
// never writing a newline.
const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLine {
				w.log.Log(context.Background(), w.level, w.msg, "line", string(w.buf[:maxLine]), "truncated", true)
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.log.Log(context.Background(), w.level, w.msg, "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
