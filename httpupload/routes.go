package httpupload

import (
	"strings"

	"parley.im/parley/xmpp/module"
)

// Routes implements module.HTTPRoutes: the PUT and GET URLs of slots (local backend) and the download
// redirects (s3 without a public base URL) are served under Prefix on the server's HTTP listeners.
func (m *Module) Routes() []module.Route {
	return []module.Route{{Pattern: Prefix, Handler: m.handler}}
}

// PublicURL returns the base URL the service's slot URLs are under (httpupload.public_url or its default).
func (m *Module) PublicURL() string { return strings.TrimSuffix(m.base.String(), "/") }

var (
	_ module.HTTPRoutes      = (*Module)(nil)
	_ module.MetricsReporter = (*Module)(nil)
)
