#!/usr/bin/python3
"""A slixmpp client that subscribes to a contact on a server Parley cannot reach (remote_test.go).

It logs in over STARTTLS with PLAIN, fetches the roster, goes online, sends a subscription request to --contact
and waits for the presence error the server bounces; then it fetches the roster again. Each step prints one
machine-checkable line:

    OK roster <n items>
    OK presence-error <from> <condition>
    OK roster-item <jid> subscription=<subscription> ask=<ask or none>
    DONE

and any failure prints "FAIL <reason>" and exits non-zero. The whole run is bounded by --timeout.

Run it with Debian's /usr/bin/python3, which has python3-slixmpp.
"""

import asyncio

import slixmpp

from slixpeer import fail, parser, run, say, setup


class Subscriber(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password,
                         plugin_config={"feature_mechanisms": {"use_mechs": ["PLAIN"]}})
        setup(self, args)
        self.bounced = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("presence_error", self.on_presence_error)
        self.add_event_handler("failed_all_auth", lambda _: self.fail("all SASL mechanisms failed"))
        self.add_event_handler("stream_error", lambda e: self.fail("stream error: %s" % e["condition"]))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))

    def fail(self, reason):
        fail(self, reason)

    def on_presence_error(self, pres):
        if pres["from"].bare == self.args.contact and not self.bounced.done():
            self.bounced.set_result(pres["error"]["condition"])

    async def start(self, _):
        try:
            await self.get_roster(timeout=self.args.timeout)
            say("OK roster %d" % len(self.client_roster))
            self.send_presence()
            contact = self.args.contact
            self.send_presence(pto=contact, ptype="subscribe")
            cond = await asyncio.wait_for(self.bounced, self.args.timeout)
            say("OK presence-error %s %s" % (contact, cond))
            # Ask the server for the whole roster (no version: slixmpp's get_roster sends the version it has,
            # which the server answers with an empty result).
            iq = self.Iq()
            iq["type"] = "get"
            iq.enable("roster")
            iq = await iq.send(timeout=self.args.timeout)
            found = False
            for jid, item in iq["roster"]["items"].items():
                if str(jid) == contact:
                    found = True
                    say("OK roster-item %s subscription=%s ask=%s" % (contact, item["subscription"], item["ask"] or "none"))
            if not found:
                say("OK roster-item %s absent" % contact)
            say("DONE")
            self.done.set_result(True)
        except asyncio.TimeoutError:
            self.fail("timed out in session")
        except Exception as e:  # noqa: BLE001 - report anything as a failure line
            self.fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    p = parser()
    p.add_argument("--contact", required=True, help="bare JID on a server that cannot be reached")
    run(Subscriber, p)
