#!/usr/bin/python3
"""A slixmpp MUC client that muc_test.go drives against a real Parley server, with mellium clients in the room.

It logs in, joins (and so creates) a room with slixmpp's XEP-0045 plugin, configures it through the
muc#roomconfig form it fetches when the room was created (status 201), reads the room's disco#info, then
waits for a groupchat message from another occupant, answers in the room and waits for its own message to come
back stamped with the room's stanza-id. Each step prints one machine-checkable line:

    OK auth <mechanism>
    OK joined <nick> codes=<status codes of the self-presence>
    OK configured
    OK info <muc features>
    READY
    RECV <nick> <body>
    SENT <body>
    OK reflected stanza-id=<id> by=<room>
    DONE

and any failure prints "FAIL <reason>" and exits non-zero. The whole run is bounded by --timeout.

Run it with Debian's /usr/bin/python3, which has python3-slixmpp.
"""

import asyncio

import slixmpp

from slixpeer import fail, parser, run, say, setup


NS_SID = "urn:xmpp:sid:0"


class MUCPeer(slixmpp.ClientXMPP):
    def __init__(self, args):
        plugin_config = {"feature_mechanisms": {"use_mechs": args.mechs.split(",")}}
        super().__init__(args.jid, args.password, plugin_config=plugin_config)
        for p in ("xep_0030", "xep_0045", "xep_0004", "xep_0203"):
            self.register_plugin(p)
        setup(self, args)  # args, done, trust of --ca
        loop = asyncio.get_event_loop()
        self.received = loop.create_future()
        self.reflected = loop.create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("auth_success", lambda _: say("OK auth " + self["feature_mechanisms"].mech.name))
        self.add_event_handler("failed_all_auth", lambda _: self.fail("all SASL mechanisms failed"))
        self.add_event_handler("groupchat_message", self.on_groupchat)
        self.add_event_handler("stream_error", lambda e: self.fail("stream error: %s" % e["condition"]))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))

    def fail(self, reason):
        fail(self, reason)

    def on_groupchat(self, msg):
        if msg["from"].bare != self.args.room or not msg["body"]:
            return
        if msg.get_plugin("delay", check=True) is not None:
            return  # history
        nick = msg["from"].resource
        if nick == self.args.nick:
            sid = msg.xml.find("{%s}stanza-id" % NS_SID)
            if sid is not None and not self.reflected.done():
                self.reflected.set_result((sid.get("id"), sid.get("by")))
            return
        if msg["body"] == self.args.expect and not self.received.done():
            say("RECV %s %s" % (nick, msg["body"]))
            self.received.set_result(True)

    async def start(self, _):
        t = self.args.timeout
        room = self.args.room
        try:
            self.send_presence()
            muc = self.plugin["xep_0045"]
            pres, _subject, _occupants, _history = await muc.join_muc_wait(room, self.args.nick, maxstanzas=0,
                                                                           timeout=t)
            codes = sorted(pres["muc"]["status_codes"])
            say("OK joined %s codes=%s" % (pres["from"].resource, ",".join(str(c) for c in codes)))
            if 201 in codes:
                form = await muc.get_room_config(room, timeout=t)
                fields = form.get_fields()
                if "muc#roomconfig_roomname" not in fields:
                    self.fail("configuration form without muc#roomconfig_roomname")
                    return
                submit = self.plugin["xep_0004"].make_form(ftype="submit")
                submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
                submit.add_field(var="muc#roomconfig_roomname", value=self.args.room_name)
                submit.add_field(var="muc#roomconfig_persistentroom", ftype="boolean", value=True)
                submit.add_field(var="muc#roomconfig_whois", value="anyone")
                await muc.set_room_config(room, submit, timeout=t)
                say("OK configured")
            info = await self.plugin["xep_0030"].get_info(jid=room, timeout=t)
            feats = sorted(f for f in info["disco_info"]["features"] if f.startswith("muc_"))
            say("OK info " + " ".join(feats))
            say("READY")
            await asyncio.wait_for(self.received, t)
            self.send_message(mto=room, mbody=self.args.send, mtype="groupchat")
            say("SENT " + self.args.send)
            sid, by = await asyncio.wait_for(self.reflected, t)
            say("OK reflected stanza-id=%s by=%s" % (sid, by))
            muc.leave_muc(room, self.args.nick)
            say("DONE")
            self.done.set_result(True)
        except asyncio.TimeoutError:
            self.fail("timed out in session")
        except Exception as e:  # noqa: BLE001 - report anything as a failure line
            self.fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    p = parser()
    p.add_argument("--mechs", default="PLAIN", help="comma-separated SASL mechanisms to allow")
    p.add_argument("--room", required=True)
    p.add_argument("--room-name", default="Slixmpp room")
    p.add_argument("--nick", default="slix")
    p.add_argument("--send", default="hello from slixmpp")
    p.add_argument("--expect", default="hello from mellium")
    run(MUCPeer, p)
