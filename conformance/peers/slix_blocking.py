#!/usr/bin/python3
"""A slixmpp client (plugin xep_0191) that blocking_test.go drives against a real Parley server.

It logs in over STARTTLS, fetches its block list, blocks --peer, fetches the list again, sends --peer a message
and waits for the bounce, unblocks it, then disconnects. Each step prints one machine-checkable line:

    OK blocklist <sorted JIDs or ->
    OK blocked <peer>
    OK blocklist <sorted JIDs>
    OK refused <error condition> <blocked child present: yes|no>
    OK unblocked
    RECV <body>          (any chat message with a body that reaches it)
    DONE

and any failure prints "FAIL <reason>" and exits non-zero. The whole run is bounded by --timeout.
"""

import asyncio

import slixmpp

from slixpeer import fail, parser, run, say, setup


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.register_plugin("xep_0191")
        setup(self, args)
        self.bounced = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_error)
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))

    def fail(self, reason):
        fail(self, reason)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            say("RECV " + msg["body"])

    def on_error(self, msg):
        if not self.bounced.done():
            blocked = "urn:xmpp:blocking:errors" in str(msg)
            self.bounced.set_result("%s %s" % (msg["error"]["condition"], "yes" if blocked else "no"))

    async def blocklist(self):
        iq = await self["xep_0191"].get_blocked(timeout=self.args.timeout)
        items = sorted(str(j) for j in iq["blocklist"]["items"])
        say("OK blocklist " + (" ".join(items) or "-"))

    async def start(self, _):
        try:
            self.send_presence()
            await self.blocklist()
            await self["xep_0191"].block([self.args.peer], timeout=self.args.timeout)
            say("OK blocked " + self.args.peer)
            await self.blocklist()
            # Let the test's peer send its message while the block is in place.
            await asyncio.sleep(self.args.pause)
            self.send_message(mto=self.args.peer, mbody="to a blocked contact", mtype="chat")
            say("OK refused " + await asyncio.wait_for(self.bounced, self.args.timeout))
            await self["xep_0191"].unblock([self.args.peer], timeout=self.args.timeout)
            say("OK unblocked")
            await self.blocklist()
            say("DONE")
            self.done.set_result(True)
        except asyncio.TimeoutError:
            self.fail("timed out in session")
        except Exception as e:  # noqa: BLE001 - report anything as a failure line
            self.fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    p = parser()
    p.add_argument("--peer", required=True, help="bare JID to block")
    p.add_argument("--pause", type=float, default=1, help="seconds to stay blocked before messaging the peer")
    run(Peer, p)
