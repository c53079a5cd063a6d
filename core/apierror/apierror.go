// Package apierror is the one place Eddy's HTTP surfaces write errors, so
// every error has the same shape:
//
//	{"error": {"code": "invalid_messages", "message": "...", "details": ...}}
//
// code is stable and machine-readable; message is for people; details is
// optional and specific to the code (e.g. one entry per invalid message).
package apierror

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error is an HTTP error with a status, a stable code and a message.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header in seconds.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// New returns an error with the given status, code and formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Abort writes e as the response and stops the handler chain.
func Abort(c *gin.Context, e *Error) {
	if e.RetryAfter > 0 {
		c.Header("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e})
}

// Internal is the error for failures that are Eddy's, not the caller's.
func Internal() *Error {
	return New(http.StatusInternalServerError, "internal", "internal error; it has been logged")
}
