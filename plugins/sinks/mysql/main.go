// Command sink.mysql is Eddy's MySQL/MariaDB sink: a gRPC plugin that
// writes each event as one row of a table it creates if missing, keyed by
// (workspace_id, message_id) so that Eddy's at-least-once redeliveries
// never duplicate a row.
//
// One process serves every installation (one per workspace using it), each
// with its own connection pool. A Write inserts multi-row, parameterised
// statements, one transaction per chunk; a row the database refuses for
// good is isolated by splitting its chunk and rejected alone, and a
// connection failure leaves the undelivered events to Eddy's retries.
package main

import (
	"fmt"
	"log/slog"

	"github.com/go-sql-driver/mysql"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

func main() {
	log := eddyplugin.Logger()
	// The driver's own messages (broken connections) go to Eddy's logs
	// rather than the standard logger.
	_ = mysql.SetLogger(driverLog{log})
	eddyplugin.Serve(newSink(log))
}

// driverLog adapts slog to the driver's Logger.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) { d.log.Warn("mysql driver: " + fmt.Sprint(v...)) }
