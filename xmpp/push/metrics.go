package push

import (
	"io"

	"parley.im/parley/xmpp/module"
)

// WriteMetrics implements module.MetricsReporter.
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteCounter(w, "parley_push_notifications_total", "XEP-0357 notifications published.", m.Published.Load())
	module.WriteCounter(w, "parley_push_failed_total", "Push registrations removed after an app server error.", m.Failed.Load())
}

var _ module.MetricsReporter = (*Module)(nil)
