#!/usr/bin/python3
"""A slixmpp client that peers_test.go drives against a real Parley server.

It logs in over STARTTLS, fetches the roster, subscribes to a peer and waits for the approval, sends the peer a
message and waits for one back, then disconnects. Each step prints one machine-checkable line:

    OK auth <mechanism>
    OK roster <n items>
    OK subscribed <peer>
    SENT <body>
    RECV <body>
    DONE

and any failure prints "FAIL <reason>" and exits non-zero. The whole run is bounded by --timeout.

Run it with Debian's /usr/bin/python3, which has python3-slixmpp.
"""

import asyncio

import slixmpp

from slixpeer import fail, parser, run, say, setup


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        plugin_config = {}
        if args.mechs:
            plugin_config["feature_mechanisms"] = {"use_mechs": args.mechs.split(",")}
        super().__init__(args.jid, args.password, plugin_config=plugin_config)
        setup(self, args)  # args, done, trust of --ca
        self.failed = None
        self.subscribed = asyncio.get_event_loop().create_future()
        self.received = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("auth_success", self.on_auth)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _: self.fail("all SASL mechanisms failed"))
        self.add_event_handler("presence_subscribed", self.on_subscribed)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("stream_error", lambda e: self.fail("stream error: %s" % e["condition"]))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))

    def fail(self, reason):
        if not self.done.done():
            self.failed = reason
            say("FAIL " + reason)
            self.done.set_result(False)

    def on_auth(self, _):
        say("OK auth " + self["feature_mechanisms"].mech.name)

    def on_failed_auth(self, stanza):
        say("AUTH-FAILED %s %s" % (self["feature_mechanisms"].mech.name, stanza["condition"]))

    def on_subscribed(self, pres):
        if pres["from"].bare == self.args.peer and not self.subscribed.done():
            self.subscribed.set_result(True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"] and not self.received.done():
            say("RECV " + msg["body"])
            self.received.set_result(msg["body"])

    async def start(self, _):
        try:
            await self.get_roster(timeout=self.args.timeout)
            say("OK roster %d" % len(self.client_roster))
            self.send_presence()
            peer = self.args.peer
            self.send_presence(pto=peer, ptype="subscribe")
            await asyncio.wait_for(self.subscribed, self.args.timeout)
            say("OK subscribed " + peer)
            sub = self.client_roster[peer]["subscription"]
            say("OK roster-item %s %s" % (peer, sub))
            self.send_message(mto=peer, mbody=self.args.send, mtype="chat")
            say("SENT " + self.args.send)
            body = await asyncio.wait_for(self.received, self.args.timeout)
            if self.args.expect and body != self.args.expect:
                self.fail("received %r, want %r" % (body, self.args.expect))
                return
            say("DONE")
            self.done.set_result(True)
        except asyncio.TimeoutError:
            self.fail("timed out in session")
        except Exception as e:  # noqa: BLE001 - report anything as a failure line
            self.fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    p = parser()
    p.add_argument("--mechs", default="", help="comma-separated SASL mechanisms to allow; default: slixmpp's choice")
    p.add_argument("--peer", required=True, help="bare JID to subscribe to and chat with")
    p.add_argument("--send", default="hello from slixmpp")
    p.add_argument("--expect", default="")
    run(Peer, p)
