package server

// What browsers load from Eddy besides the APIs: the console (at /, served
// by the API role) and, from the collector role, the one-line tracker
// (/sdk/eddy.js) and the actions stream its pages listen to (/v1/actions).

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/console"
	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/sdk/tracker"
)

// consoleHeaders are the security headers of the console's pages: nothing
// but Eddy's own scripts, no framing, no sniffing.
var consoleHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
	"X-Frame-Options":        "DENY",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "same-origin",
}

// consoleHandler serves the built console: its files, and index.html for
// every other path (the app routes in the browser). Without a build it
// says how to make one.
func consoleHandler() gin.HandlerFunc {
	files, built := console.Files()
	var index []byte
	if built {
		index, _ = fs.ReadFile(files, "index.html")
	}
	static := http.FileServer(http.FS(files))
	return func(c *gin.Context) {
		for k, v := range consoleHeaders {
			c.Header(k, v)
		}
		if !built {
			c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8",
				[]byte("The console is not built: run `make build` (or `npm ci && npm run build` in console/).\n"))
			return
		}
		p := strings.TrimPrefix(path.Clean(c.Request.URL.Path), "/")
		if p != "" && p != "index.html" {
			if st, err := fs.Stat(files, p); err == nil && !st.IsDir() {
				if strings.HasPrefix(p, "assets/") {
					// Vite names assets by their content's hash.
					c.Header("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					c.Header("Cache-Control", "no-cache")
				}
				static.ServeHTTP(c.Writer, c.Request)
				return
			}
			if strings.HasPrefix(p, "assets/") {
				c.Status(http.StatusNotFound)
				return
			}
		}
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", index)
	}
}

// isConsolePath tells whether an unmatched request is the console's: a
// page load (GET or HEAD) outside the APIs.
func isConsolePath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	for _, api := range []string{api.Base + "/", api.CubeBase + "/", "/v1/", "/sdk/"} {
		if strings.HasPrefix(p, api) {
			return false
		}
	}
	return true
}

// trackerConfig is what the tracker is told of its site's workspace.
type trackerConfig struct {
	WriteKey *string                `json:"writeKey"`
	Consent  *trackerConsentSummary `json:"consent"`
}

type trackerConsentSummary struct {
	Required           []string `json:"required"`
	Purposes           []string `json:"purposes"`
	AllowNecessaryOnly bool     `json:"allowNecessaryOnly"`
}

// trackerPolicyTTL is how long the tracker route caches a workspace's
// consent policy: a site's script says what the policy was at most this
// long ago (and browsers cache the script for trackerMaxAge).
const (
	trackerPolicyTTL = 30 * time.Second
	trackerMaxAge    = 300
)

type cachedTrackerPolicy struct {
	p  consent.Policy
	at time.Time
}

// trackerHandler serves GET /sdk/eddy.js?key=WRITE_KEY: the tracker,
// preceded by its configuration (the key, if it is valid, and its
// workspace's consent policy), gzipped when the browser accepts it.
func (s *Server) trackerHandler() gin.HandlerFunc {
	script, built := tracker.Script()
	var mu sync.Mutex
	policies := map[string]cachedTrackerPolicy{}
	policy := func(ctx context.Context, ws string) (consent.Policy, error) {
		mu.Lock()
		cp, ok := policies[ws]
		mu.Unlock()
		if ok && time.Since(cp.at) < trackerPolicyTTL {
			return cp.p, nil
		}
		p, err := s.privacyPolicy(ctx, ws)
		if err != nil {
			return p, err
		}
		mu.Lock()
		if len(policies) > 10000 {
			clear(policies)
		}
		policies[ws] = cachedTrackerPolicy{p: p, at: time.Now()}
		mu.Unlock()
		return p, nil
	}
	gz := sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression); return w }}
	return func(c *gin.Context) {
		if !built {
			c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8",
				[]byte("The tracker is not built: run `make build` (or `npm ci && npm run build` in sdk/tracker/).\n"))
			return
		}
		var cfg trackerConfig
		if key := c.Query("key"); key != "" && len(key) <= 256 {
			if src, ok := s.keys.Lookup(key); ok {
				p, err := policy(c.Request.Context(), src.WorkspaceID)
				if err != nil {
					s.log.Warn("tracker: read the consent policy", "workspace", src.WorkspaceSlug, "err", err)
					c.Header("Retry-After", "5")
					c.Status(http.StatusServiceUnavailable)
					return
				}
				cfg.WriteKey = &key
				cfg.Consent = &trackerConsentSummary{Required: nonNil(p.Required), Purposes: nonNil(p.Purposes),
					AllowNecessaryOnly: p.AllowNecessaryOnly}
			}
		}
		head, _ := json.Marshal(cfg)
		var body bytes.Buffer
		body.Grow(len(script) + len(head) + 32)
		body.WriteString("window.__eddyConfig=")
		body.Write(head)
		body.WriteString(";\n")
		body.Write(script)
		c.Header("Cache-Control", "public, max-age="+strconv.Itoa(trackerMaxAge))
		c.Header("Vary", "Accept-Encoding")
		c.Header("X-Content-Type-Options", "nosniff")
		const ct = "application/javascript; charset=utf-8"
		if !strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
			c.Data(http.StatusOK, ct, body.Bytes())
			return
		}
		var out bytes.Buffer
		w := gz.Get().(*gzip.Writer)
		w.Reset(&out)
		w.Write(body.Bytes())
		w.Close()
		gz.Put(w)
		c.Header("Content-Encoding", "gzip")
		c.Data(http.StatusOK, ct, out.Bytes())
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
