package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/apierror"
)

// fieldError says what is wrong with one field of a request.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// fieldErrors are a request's validation failures; fail answers them with a
// 400 whose details list each.
type fieldErrors []fieldError

func (e fieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, fieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *fieldErrors) require(field, v string) {
	if v == "" {
		e.add(field, "is required")
	}
}

// Limits on what clients send.
const (
	maxNameLen  = 200
	maxEmailLen = 254
)

// name checks a display name: required, at most maxNameLen characters of
// valid UTF-8 without control characters (which PostgreSQL text may refuse,
// and which no name needs).
func (e *fieldErrors) name(field, v string) {
	switch {
	case v == "":
		e.add(field, "is required")
	case !utf8.ValidString(v):
		e.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxNameLen:
		e.add(field, "must be at most %d characters", maxNameLen)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		e.add(field, "must not contain control characters")
	}
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// slug checks an id chosen by the caller.
func (e *fieldErrors) slug(field, v string) {
	switch {
	case v == "":
		e.add(field, "is required")
	case !slugPattern.MatchString(v):
		e.add(field, "must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit")
	}
}

// email checks an email address and returns it as given.
func (e *fieldErrors) email(field, v string) {
	if v == "" {
		e.add(field, "is required")
		return
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > maxEmailLen {
		e.add(field, "must be a plain email address such as ada@example.com (at most %d characters)", maxEmailLen)
	}
}

// text checks free text a client filters by, such as a query parameter:
// PostgreSQL text holds neither NUL characters nor invalid UTF-8, and
// refuses a parameter that has them.
func (e *fieldErrors) text(field, v string) {
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		e.add(field, "must be valid UTF-8 without NUL characters")
	}
}

// oneOf checks that v is one of allowed.
func (e *fieldErrors) oneOf(field, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	e.add(field, "must be one of %s", strings.Join(allowed, ", "))
}

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
// failure into a fieldErrors that names the field.
func decodeStrict(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fieldErrors{{Field: "body", Message: "is required: a JSON object"}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.More() {
		return fieldErrors{{Field: "body", Message: "must be one JSON object, with nothing after it"}}
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return fieldErrors{{Field: "body", Message: "must be a JSON object"}}
	case errors.As(err, &typeErr):
		return fieldErrors{{Field: typeErr.Field, Message: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", not " + typeErr.Value}}
	case errors.As(err, &syntaxErr):
		return fieldErrors{{Field: "body", Message: fmt.Sprintf("is not valid JSON (at byte %d)", syntaxErr.Offset)}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fieldErrors{{Field: "body", Message: "is not valid JSON (it ends early)"}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return fieldErrors{{Field: field, Message: "is not a known field"}}
	default:
		return fieldErrors{{Field: "body", Message: err.Error()}}
	}
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
		a.fail(c, fieldErrors{{Field: name, Message: "is not an id: ids are 1 to 63 lower-case letters, digits, '-' or '_'"}})
		return "", false
	}
	return v, true
}

// uuidParam returns a UUID path parameter, or answers 400.
func (a *API) uuidParam(c *gin.Context, name string) (string, bool) {
	v := c.Param(name)
	u, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		a.fail(c, fieldErrors{{Field: name, Message: "is not an id: it must be a UUID"}})
		return "", false
	}
	return u.String(), true
}

// Pagination.

const (
	defaultLimit = 50
	maxLimit     = 200
)

// pageParams reads ?limit= and ?cursor=, decoding the cursor into cur.
func (a *API) pageParams(c *gin.Context, cur any) (limit int, ok bool) {
	limit = defaultLimit
	var errs fieldErrors
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			errs.add("limit", "must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	if s := c.Query("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		// No cursor this API writes holds a NUL character, which PostgreSQL
		// would refuse.
		if err != nil || len(s) > 1024 || json.Unmarshal(b, cur) != nil || bytes.Contains(b, []byte(`\u0000`)) {
			errs.add("cursor", "is not a cursor from this list's next_cursor")
		}
	}
	if errs != nil {
		a.fail(c, errs)
		return 0, false
	}
	return limit, true
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
