// Command eddy runs the Eddy customer data platform: see `eddy --help`.
package main

import (
	"fmt"
	"os"
	// Workspace time zones are checked against the IANA database; embed it
	// so that hosts without tzdata (minimal containers) work the same.
	_ "time/tzdata"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "eddy:", err)
		os.Exit(1)
	}
}
