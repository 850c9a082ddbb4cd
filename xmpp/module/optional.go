package module

import (
	"fmt"
	"io"
	"net/http"
)

// Optional interfaces. Besides Register, the server learns what a module needs from the module value itself, as
// Caddy does with its lifecycle interfaces: it asserts each interface below on every value of its one ordered
// module list. Adding a module therefore needs no other list in cmd/parley (no switch over module types for
// metrics, no extra mux line for HTTP handlers).

// Validator is implemented by values whose configuration can be checked before the server listens: module
// Configs (cmd/parley validates every config field of its Config that implements it), and modules that check
// more than their Config can alone. Errors name the configuration key ("muc.max_rooms: ...").
type Validator interface {
	Validate() error
}

// MetricsReporter is implemented by modules that export counters. The server's /metrics handler calls
// WriteMetrics of each module in list order; it writes complete Prometheus text-format families (# HELP,
// # TYPE and samples), with names starting with parley_.
type MetricsReporter interface {
	WriteMetrics(w io.Writer)
}

// Route is an HTTP handler a module serves on the server's HTTP listeners (listen.https and listen.http).
type Route struct {
	// Pattern is a net/http ServeMux pattern ("/upload/").
	Pattern string
	Handler http.Handler
}

// HTTPRoutes is implemented by modules that serve HTTP (the upload service's PUT and GET URLs). The server
// registers every route on the mux of its HTTP listeners; two modules with one pattern fail at startup.
type HTTPRoutes interface {
	Routes() []Route
}

// WriteCounter writes one Prometheus counter without labels, for WriteMetrics implementations.
func WriteCounter(w io.Writer, name, help string, v uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
}

// WriteGauge writes one Prometheus gauge without labels, for WriteMetrics implementations.
func WriteGauge(w io.Writer, name, help string, v int64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
}
