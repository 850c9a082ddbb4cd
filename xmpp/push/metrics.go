package push

import (
	"io"

	"parley.im/parley/xmpp/module"
)

// WriteMetrics implements module.MetricsReporter: every counter of the module (README.md, Metrics).
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteCounter(w, "parley_push_enabled_total", "XEP-0357 enable requests accepted.", m.Enabled.Load())
	module.WriteCounter(w, "parley_push_disabled_total", "Push registrations removed by disable requests.", m.Disabled.Load())
	module.WriteCounter(w, "parley_push_notifications_total", "XEP-0357 notifications published.", m.Published.Load())
	module.WriteCounter(w, "parley_push_coalesced_total", "Messages folded into a later notification by push.min_interval.", m.Coalesced.Load())
	module.WriteCounter(w, "parley_push_failed_total", "Push registrations removed after an app server error.", m.Failed.Load())
}

var _ module.MetricsReporter = (*Module)(nil)
