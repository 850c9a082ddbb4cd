package offline

import (
	"io"

	"parley.im/parley/xmpp/module"
)

// WriteMetrics implements module.MetricsReporter.
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteCounter(w, "parley_offline_stored_total", "Messages stored for offline accounts.", m.Stored.Load())
	module.WriteCounter(w, "parley_offline_delivered_total", "Offline messages delivered.", m.Delivered.Load())
	module.WriteCounter(w, "parley_offline_expired_total", "Offline messages expired unread.", m.Expired.Load())
}

var _ module.MetricsReporter = (*Module)(nil)
