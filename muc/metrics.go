package muc

import (
	"io"

	"parley.im/parley/xmpp/module"
)

// WriteMetrics implements module.MetricsReporter.
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteGauge(w, "parley_muc_rooms", "Rooms in memory (XEP-0045).", m.Stats.Rooms.Load())
	module.WriteGauge(w, "parley_muc_occupants", "Occupants (nicks) in all rooms.", m.Stats.Occupants.Load())
	module.WriteCounter(w, "parley_muc_messages_total", "Groupchat messages accepted.", m.Stats.Messages.Load())
	module.WriteCounter(w, "parley_muc_deliveries_total", "Groupchat messages queued to occupants' sessions.", m.Stats.Deliveries.Load())
}

var _ module.MetricsReporter = (*Module)(nil)
