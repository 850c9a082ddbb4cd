package mam

import (
	"io"

	"parley.im/parley/xmpp/module"
)

// WriteMetrics implements module.MetricsReporter.
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteCounter(w, "parley_archive_messages_total", "Messages archived (XEP-0313).", m.Archived.Load())
	module.WriteCounter(w, "parley_archive_duplicates_total", "Client retries dropped by origin-id.", m.Duplicates.Load())
}

var _ module.MetricsReporter = (*Module)(nil)
