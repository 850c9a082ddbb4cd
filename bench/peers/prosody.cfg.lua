-- Prosody 0.12 configured for parley-bench: a private instance on 127.0.0.1:15222, its data, logs and
-- certificate in $PARLEY_BENCH_DIR (bench/peers/peer.sh creates that directory and the certificate).
-- Kept equal to ejabberd.yml where the two can be compared: STARTTLS offered, SCRAM-SHA-1 with 4096
-- iterations, in-band registration from loopback, no rate or traffic shaping, 256 KiB stanza limit, MUC on
-- conference.localhost, offline storage on, no archive, no stream management, warn-level log to a file.

local dir = ENV_PARLEY_BENCH_DIR or "/tmp/parley-bench-prosody"
local port = tonumber(ENV_PARLEY_BENCH_PORT or "15222")

pidfile = dir .. "/prosody.pid"
data_path = dir .. "/data"
-- epoll is the 0.12 default; named so that a reader knows the event loop.
network_backend = "epoll"
-- The same listen backlog as ejabberd.yml (server_epoll defaults to 128, ejabberd to 5).
-- nagle = false (TCP_NODELAY): with Nagle on, Prosody's separate small writes (stream header, then
-- features) wait for the client's delayed ACK, adding ~40 ms per login round on loopback. ejabberd sends
-- each reply in one write and Go (Parley) sets TCP_NODELAY by default, so this keeps the comparison
-- about the servers rather than about TCP timers.
network_settings = { tcp_backlog = 1024; nagle = false }



log = { { levels = { min = "warn" }, to = "file", filename = dir .. "/prosody.log" } }

-- Listen on loopback only, c2s only.
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { port }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_direct_tls_ports = { }

modules_enabled = {
	"saslauth"; "tls"; "roster"; "disco"; "presence"; "message"; "iq";
	"ping"; "register"; "offline"; "posix";
}
-- Loaded implicitly otherwise; off so that neither server keeps extra per-session state the other does not.
modules_disabled = { "s2s"; "s2s_auth_certs"; "smacks"; "carbons"; "limits"; "mam"; "csi_simple" }

-- No bandwidth limits (mod_limits is not loaded; this makes it explicit if someone loads it).
limits = { }

-- No certificate directory: the one certificate below serves every host.
certificates = dir .. "/certs"
ssl = {
	certificate = dir .. "/cert.pem";
	key = dir .. "/key.pem";
}
c2s_require_encryption = false
allow_unencrypted_plain_auth = false

authentication = "internal_hashed"
default_iteration_count = 4096
storage = "internal"

c2s_stanza_size_limit = 262144
c2s_timeout = 600

allow_registration = true
-- mod_register_limits: no throttle (min_seconds_between_registrations unset), loopback allowed.
registration_allowlist = { "127.0.0.0/8", "::1" }

VirtualHost "localhost"

Component "conference.localhost" "muc"
	-- Rooms open as soon as they are created (the client still submits an instant-room form).
	muc_room_locking = false
	restrict_room_creation = false
	max_history_messages = 20
