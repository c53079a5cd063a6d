package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Defaults and limits of the configuration (plugin.yaml declares the same).
const (
	defaultTable     = "eddy_events"
	defaultBatchSize = 500
	// maxBatchSize keeps a statement under MySQL's 65,535 placeholders
	// (12 per row).
	maxBatchSize = 5000

	dialTimeout = 5 * time.Second
	ioTimeout   = 30 * time.Second
	// strictMode makes the server refuse a value that does not fit rather
	// than truncate it: a truncated message id would merge two events.
	strictMode = "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
)

// config is an installation's configuration.
type config struct {
	// DSN is a go-sql-driver/mysql data source name; it may hold a
	// password, so it is never logged or quoted.
	DSN string `json:"dsn"`
	// Table is the table events are written to, created if missing.
	Table *string `json:"table"`
	// BatchSize is the most rows in one statement and transaction.
	BatchSize *int `json:"batch_size"`
}

// settings is a checked configuration with its defaults applied.
type settings struct {
	db        *mysql.Config
	table     string
	batchSize int
}

// tableName is what the table may be called: identifiers cannot be
// statement parameters, so only names that need no escaping are accepted.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// parseConfig decodes raw strictly and checks every field; errors name the
// fields at fault and never quote the DSN.
func parseConfig(raw []byte) (*settings, error) {
	var c config
	if err := eddyplugin.DecodeConfig(raw, &c); err != nil {
		return nil, err
	}
	var errs []error
	s := &settings{table: defaultTable, batchSize: defaultBatchSize}
	if c.DSN == "" {
		errs = append(errs, errors.New("config.dsn: is required"))
	} else if dc, err := mysql.ParseDSN(c.DSN); err != nil {
		// The driver's messages name a parameter, not the password; redact
		// anyway in case a future version quotes more.
		errs = append(errs, fmt.Errorf("config.dsn: not a valid go-sql-driver DSN (user:password@tcp(host:3306)/database): %s",
			redact(err.Error(), passwordOf(c.DSN))))
	} else {
		if dc.DBName == "" {
			errs = append(errs, errors.New("config.dsn: must name a database (…/database)"))
		}
		applyDefaults(dc)
		s.db = dc
	}
	if c.Table != nil {
		if !tableName.MatchString(*c.Table) {
			errs = append(errs, fmt.Errorf("config.table: %q must be 1 to 64 letters, digits or _, not starting with a digit", *c.Table))
		}
		s.table = *c.Table
	}
	if c.BatchSize != nil {
		if *c.BatchSize < 1 || *c.BatchSize > maxBatchSize {
			errs = append(errs, fmt.Errorf("config.batch_size: must be between 1 and %d", maxBatchSize))
		}
		s.batchSize = *c.BatchSize
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// applyDefaults bounds the connection's waits and makes the session
// strict, unless the DSN chose otherwise.
func applyDefaults(c *mysql.Config) {
	if c.Timeout == 0 {
		c.Timeout = dialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = ioTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = ioTimeout
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	if _, ok := c.Params["sql_mode"]; !ok {
		c.Params["sql_mode"] = strictMode
	}
}

// describe names a database for messages: user, address and database,
// never the password.
func describe(c *mysql.Config) string {
	return fmt.Sprintf("%s@%s(%s)/%s", c.User, c.Net, c.Addr, c.DBName)
}

// passwordOf extracts the password of a DSN that the driver could not
// parse: between the first ':' and the last '@' before the address.
func passwordOf(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(dsn[:at], ":")
	if !ok {
		return ""
	}
	return pw
}

// redact removes a password from a message.
func redact(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "[redacted]")
}
