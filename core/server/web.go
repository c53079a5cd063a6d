package server

// What browsers load from Eddy besides the APIs: the console (at /, served
// by the API role) and, from the collector role, the one-line tracker
// (/sdk/eddy.js) and the actions stream its pages listen to (/v1/actions).

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
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

// trackerTTL is how long the tracker route keeps a write key's response:
// a site's script says what its workspace's policy was at most this long
// ago (and browsers cache the script for trackerMaxAge).
const (
	trackerTTL    = 30 * time.Second
	trackerMaxAge = 300
	// trackerCacheMax bounds the keys whose responses are kept.
	trackerCacheMax = 10000
)

// trackerResponse is the script served for one write key, built once per
// trackerTTL: as is, and gzipped.
type trackerResponse struct {
	plain, gz []byte
	at        time.Time
}

// trackerHandler serves GET /sdk/eddy.js?key=WRITE_KEY: the tracker,
// preceded by its configuration (the key, if it is valid, and its
// workspace's consent policy), gzipped when the browser accepts it. Each
// key's response is built (policy read, gzip) at most once per trackerTTL;
// every unknown key shares one, built at start.
func (s *Server) trackerHandler() gin.HandlerFunc {
	script, built := tracker.Script()
	unknown := buildTrackerResponse(script, trackerConfig{})
	var mu sync.Mutex
	cache := map[string]trackerResponse{}
	response := func(ctx context.Context, key string) (trackerResponse, error) {
		if key == "" || len(key) > 256 {
			return unknown, nil
		}
		// A revoked key stops at once: the cache is only read for a key
		// that is valid now.
		src, ok := s.keys.Lookup(key)
		if !ok {
			return unknown, nil
		}
		mu.Lock()
		r, ok := cache[key]
		mu.Unlock()
		if ok && time.Since(r.at) < trackerTTL {
			return r, nil
		}
		p, err := s.privacyPolicy(ctx, src.WorkspaceID)
		if err != nil {
			return r, fmt.Errorf("consent policy of workspace %s: %w", src.WorkspaceSlug, err)
		}
		r = buildTrackerResponse(script, trackerConfig{WriteKey: &key, Consent: &trackerConsentSummary{
			Required: nonNil(p.Required), Purposes: nonNil(p.Purposes), AllowNecessaryOnly: p.AllowNecessaryOnly}})
		mu.Lock()
		if len(cache) >= trackerCacheMax {
			clear(cache)
		}
		cache[key] = r
		mu.Unlock()
		return r, nil
	}
	return func(c *gin.Context) {
		if !built {
			c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8",
				[]byte("The tracker is not built: run `make build` (or `npm ci && npm run build` in sdk/tracker/).\n"))
			return
		}
		r, err := response(c.Request.Context(), c.Query("key"))
		if err != nil {
			s.log.Warn("tracker: read the consent policy", "err", err)
			c.Header("Retry-After", "5")
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Header("Cache-Control", "public, max-age="+strconv.Itoa(trackerMaxAge))
		c.Header("Vary", "Accept-Encoding")
		c.Header("X-Content-Type-Options", "nosniff")
		const ct = "application/javascript; charset=utf-8"
		if !strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
			c.Data(http.StatusOK, ct, r.plain)
			return
		}
		c.Header("Content-Encoding", "gzip")
		c.Data(http.StatusOK, ct, r.gz)
	}
}

// buildTrackerResponse prefixes the script with its configuration, and
// gzips the whole.
func buildTrackerResponse(script []byte, cfg trackerConfig) trackerResponse {
	head, _ := json.Marshal(cfg)
	var body bytes.Buffer
	body.Grow(len(script) + len(head) + 32)
	body.WriteString("window.__eddyConfig=")
	body.Write(head)
	body.WriteString(";\n")
	body.Write(script)
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	w.Write(body.Bytes())
	w.Close()
	return trackerResponse{plain: body.Bytes(), gz: gz.Bytes(), at: time.Now()}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
