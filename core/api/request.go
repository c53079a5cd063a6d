package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/store"
)

// bind decodes the JSON request body into dst strictly: at most maxBodyBytes,
// one JSON object, no unknown fields, every field of the right type. It
// answers the error itself and returns false when the body is not that.
func (a *API) bind(c *gin.Context, dst any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		apierror.Abort(c, apierror.New(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than %d bytes", maxBodyBytes))
		return false
	}
	if err != nil {
		apierror.Abort(c, apierror.New(http.StatusBadRequest, "invalid_request", "could not read the request body: %v", err))
		return false
	}
	if err := decodeStrict(body, dst); err != nil {
		a.fail(c, err)
		return false
	}
	return true
}

// decodeStrict decodes one JSON object into dst, turning every decoding
// failure into a FieldErrors that names the field.
func decodeStrict(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return FieldErrors{{Field: "body", Message: "is required: a JSON object"}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.More() {
		return FieldErrors{{Field: "body", Message: "must be one JSON object, with nothing after it"}}
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return exactNames(body, reflect.TypeOf(dst), "")
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return FieldErrors{{Field: "body", Message: "must be a JSON object"}}
	case errors.As(err, &typeErr):
		return FieldErrors{{Field: typeErr.Field, Message: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", not " + typeErr.Value}}
	case errors.As(err, &syntaxErr):
		return FieldErrors{{Field: "body", Message: fmt.Sprintf("is not valid JSON (at byte %d)", syntaxErr.Offset)}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldErrors{{Field: "body", Message: "is not valid JSON (it ends early)"}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return FieldErrors{{Field: field, Message: "is not a known field"}}
	default:
		return FieldErrors{{Field: "body", Message: err.Error()}}
	}
}

// exactNames checks that every key of the JSON object raw names a field of
// struct t by its exact json tag, and so on in nested objects: encoding/json
// matches names case-insensitively, so {"NAME": ...} would fill Name.
func exactNames(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var obj map[string]json.RawMessage
	if t.Kind() != reflect.Struct || json.Unmarshal(raw, &obj) != nil {
		return nil // not an object (null, say): the decoder checked its type
	}
	for key, v := range obj {
		name := key
		if path != "" {
			name = path + "." + key
		}
		f, ok := fieldByTag(t, key)
		if !ok {
			return FieldErrors{{Field: name, Message: "is not a known field (names are case-sensitive)"}}
		}
		if err := exactNames(v, f.Type, name); err != nil {
			return err
		}
	}
	return nil
}

// fieldByTag finds the field of struct t whose json name is exactly key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}

// Path parameters.

// slugParam returns a slug path parameter, or answers 400 when it cannot be
// an id (the same answer for every caller, so it reveals nothing).
func (a *API) slugParam(c *gin.Context, name string) (string, bool) {
	v := c.Param(name)
	if !slugPattern.MatchString(v) {
		a.fail(c, FieldErrors{{Field: name, Message: "is not an id: ids are 1 to 63 lower-case letters, digits, '-' or '_'"}})
		return "", false
	}
	return v, true
}

// uuidParam returns a UUID path parameter, or answers 400.
func (a *API) uuidParam(c *gin.Context, name string) (string, bool) {
	v := c.Param(name)
	u, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		a.fail(c, FieldErrors{{Field: name, Message: "is not an id: it must be a UUID"}})
		return "", false
	}
	return u.String(), true
}

// timeRange reads the ?from= (inclusive) and ?to= (exclusive) bounds of a
// listing, RFC 3339 times; zero when absent.
func timeRange(c *gin.Context, errs *FieldErrors) (from, to time.Time) {
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := c.Query(q.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs.Add(q.name, "must be an RFC 3339 time such as 2026-11-22T10:00:00Z")
			}
			*q.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		errs.Add("to", "must be after from")
	}
	return from, to
}

// Pagination.

const (
	defaultLimit = 50
	maxLimit     = 200
)

// pageParams reads ?limit= and ?cursor=, decoding the cursor into cur.
func (a *API) pageParams(c *gin.Context, cur any) (limit int, ok bool) {
	limit = defaultLimit
	var errs FieldErrors
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			errs.Add("limit", "must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	if s := c.Query("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		// No cursor this API writes holds a NUL character, which PostgreSQL
		// would refuse.
		if err != nil || len(s) > 1024 || json.Unmarshal(b, cur) != nil || bytes.Contains(b, []byte(`\u0000`)) {
			errs.Add("cursor", "is not a cursor from this list's next_cursor")
		}
	}
	if errs != nil {
		a.fail(c, errs)
		return 0, false
	}
	return limit, true
}

// paged answers a page of a list ordered by a string key (a slug, an id, an
// email): it reads ?limit and ?cursor, fetches the page after the cursor
// and writes it.
func paged[T any](a *API, c *gin.Context, fetch func(ctx context.Context, p store.Page) ([]T, error), view func(T) any, key func(T) string) {
	var after string
	limit, ok := a.pageParams(c, &after)
	if !ok {
		return
	}
	items, err := fetch(c.Request.Context(), store.Page{After: after, Limit: limit + 1})
	if err != nil {
		a.fail(c, err)
		return
	}
	list(c, items, limit, view, func(v T) any { return key(v) })
}

// list answers a page of items. Queries fetch one more than limit: if it
// came, there is a next page, whose cursor is the last item shown.
func list[T any](c *gin.Context, items []T, limit int, view func(T) any, cursor func(T) any) {
	data := make([]any, 0, min(len(items), limit))
	for i, it := range items {
		if i == limit {
			break
		}
		data = append(data, view(it))
	}
	out := gin.H{"data": data}
	if len(items) > limit {
		b, _ := json.Marshal(cursor(items[limit-1]))
		out["next_cursor"] = base64.RawURLEncoding.EncodeToString(b)
	}
	c.JSON(http.StatusOK, out)
}
