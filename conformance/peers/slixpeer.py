"""What every slixmpp peer script of the conformance tests shares: the output protocol, the common flags, the
TLS trust of the server's self-signed certificate, and the bounded run.

A script defines a slixmpp.ClientXMPP subclass that calls setup(self, args) in __init__, sets self.done to
True or False when it ends (fail() prints the FAIL line), adds its own flags to parser(), and calls
run(PeerClass, parser).
"""

import argparse
import asyncio
import logging
import ssl
import sys


def say(line):
    print(line, flush=True)


def setup(peer, args):
    """Common state of a peer: its arguments, its done future, and trust of --ca (hostname checked)."""
    peer.args = args
    peer.done = asyncio.get_event_loop().create_future()
    peer.ssl_context = ssl.create_default_context(cafile=args.ca)
    peer.ssl_context.check_hostname = True


def fail(peer, reason):
    """Reports the first failure and ends the run."""
    if not peer.done.done():
        say("FAIL " + reason)
        peer.done.set_result(False)


def parser(description=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True, help="PEM certificate to trust (the server's self-signed one)")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--debug", action="store_true")
    return p


async def _main(peer_class, args):
    xmpp = peer_class(args)
    xmpp.connect(address=(args.host, args.port), force_starttls=True, disable_starttls=False)
    try:
        ok = await asyncio.wait_for(xmpp.done, args.timeout)
    except asyncio.TimeoutError:
        say("FAIL timed out after %ss" % args.timeout)
        ok = False
    xmpp.disconnect()
    await asyncio.sleep(0.2)
    return 0 if ok else 1


def run(peer_class, p):
    """Parses the flags, connects over STARTTLS and exits 0 if the peer's run succeeded within --timeout."""
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(_main(peer_class, a)))
