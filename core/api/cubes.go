package api

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
)

// Limits on a workspace's own cube files.
const (
	maxCubeFiles     = 50
	maxCubeFileBytes = 64 << 10
	maxCubeSetBytes  = 512 << 10
)

var cubeFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.ya?ml$`)

// cubeFilesJSON is a workspace's own cube files.
type cubeFilesJSON struct {
	Files     map[string]string `json:"files"`
	Version   int64             `json:"version"`
	UpdatedAt *time.Time        `json:"updated_at"`
}

func (a *API) getCubes(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	files, err := a.store.WorkspaceCubes(c.Request.Context(), ws)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := cubeFilesJSON{Files: files.Files, Version: files.Version}
	if !files.UpdatedAt.IsZero() {
		t := files.UpdatedAt.UTC()
		out.UpdatedAt = &t
	}
	c.JSON(http.StatusOK, out)
}

type putCubesRequest struct {
	Files map[string]string `json:"files"`
}

// putCubes replaces a workspace's own cube files, once each parses and the
// whole merges with the shipped models.
func (a *API) putCubes(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxCubeSetBytes+16<<10))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		apierror.Abort(c, apierror.New(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than %d bytes", maxCubeSetBytes+16<<10))
		return
	}
	if err != nil {
		apierror.Abort(c, apierror.New(http.StatusBadRequest, "invalid_request", "could not read the request body: %v", err))
		return
	}
	var req putCubesRequest
	if err := decodeStrict(body, &req); err != nil {
		a.fail(c, err)
		return
	}
	var errs FieldErrors
	if req.Files == nil {
		errs.Add("files", "is required: an object of file name to YAML ({} for none)")
	}
	if len(req.Files) > maxCubeFiles {
		errs.Add("files", "must hold at most %d files", maxCubeFiles)
	}
	names := make([]string, 0, len(req.Files))
	for name := range req.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	total := 0
	for _, name := range names {
		text := req.Files[name]
		total += len(text)
		switch {
		case !cubeFileName.MatchString(name) || strings.Contains(name, ".."):
			errs.Add("files", "%q is not a file name: letters, digits, _ . - (at most 64), ending .yml or .yaml", name)
		case len(text) > maxCubeFileBytes:
			errs.Add("files."+name, "must be at most %d bytes", maxCubeFileBytes)
		case !utf8.ValidString(text):
			errs.Add("files."+name, "must be valid UTF-8")
		}
	}
	if total > maxCubeSetBytes {
		errs.Add("files", "must hold at most %d bytes in all", maxCubeSetBytes)
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	_, own, errs := mergeCubeFiles(a.baseCubes(), req.Files)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ctx := c.Request.Context()
	if len(own) > 0 {
		// A cube's own SQL is safe only where the analytics role cannot
		// call set_config (migration 00011).
		hardened, err := a.store.AnalyticsHardened(ctx)
		if err != nil {
			a.fail(c, err)
			return
		}
		if !hardened {
			for _, cb := range own {
				if cb.SQL != "" {
					errs.Add("files."+cb.File, "%s:%d: cube %s: sql is refused here: this database lets every role call set_config "+
						"(a superuser must run the migrations); use sql_table", cb.File, cb.Line, cb.Name)
				}
			}
			if errs != nil {
				a.fail(c, errs)
				return
			}
		}
	}
	saved, err := a.store.SetWorkspaceCubes(ctx, change(c), ws, req.Files)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.forgetCubeModel(ws.ID)
	out := cubeFilesJSON{Files: saved.Files, Version: saved.Version}
	t := saved.UpdatedAt.UTC()
	out.UpdatedAt = &t
	c.JSON(http.StatusOK, out)
}
