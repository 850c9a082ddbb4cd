// xmpp.js peer for conformance/websocket_test.go: logs in over XMPP over WebSocket (RFC 7395), sends a message
// to a peer, waits for the peer's messages (a large one, then an expected text), answers, and closes the stream.
// Every step prints one line on stdout, which the Go test waits for.
//
//   node xmppjs_client.mjs --service ws://127.0.0.1:5280/xmpp-websocket --domain localhost \
//     --username alice --password secret --peer bob@localhost --send "hello" --expect "hi" [--timeout 20]
import { client, xml } from "@xmpp/client";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
for (const k of ["service", "domain", "username", "password", "peer", "send", "expect"]) {
  if (!args[k]) {
    console.error(`missing --${k}`);
    process.exit(64);
  }
}
const timeout = Number(args.timeout || 20) * 1000;

const xmpp = client({
  service: args.service,
  domain: args.domain,
  username: args.username,
  password: args.password,
  resource: "xmppjs",
});
// Reconnecting would hide a dropped connection from the test.
xmpp.reconnect.stop();

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(2);
}, timeout);

xmpp.on("error", (err) => {
  console.log(`error ${err.condition || ""} ${err.message}`);
});
xmpp.on("offline", () => console.log("offline"));
xmpp.on("status", (status) => console.error(`status ${status}`));
const short = (el) => {
  const s = el.toString();
  return s.length > 300 ? s.slice(0, 300) + `... (${s.length} bytes)` : s;
};
xmpp.on("element", (el) => console.error(`S: ${short(el)}`));
xmpp.on("send", (el) => console.error(`C: ${short(el)}`));

let done = false;
xmpp.on("stanza", async (stanza) => {
  if (!stanza.is("message") || stanza.attrs.type === "error") return;
  const body = stanza.getChildText("body");
  if (body === null) return;
  if (body.startsWith("big:")) {
    console.log(`big message ${body.length}`);
    return;
  }
  console.log(`message from ${stanza.attrs.from}: ${body}`);
  if (body === args.expect && !done) {
    done = true;
    console.log("got expected");
    await xmpp.send(xml("message", { to: args.peer, type: "chat" }, xml("body", {}, "bye from xmpp.js")));
    await xmpp.stop();
    console.log("closed");
    clearTimeout(timer);
    process.exit(0);
  }
});

xmpp.on("online", async (address) => {
  console.log(`online ${address.toString()} sm=${xmpp.streamManagement.enabled ? "on" : "off"}`);
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: args.peer, type: "chat" }, xml("body", {}, args.send)));
  // A large stanza from this side too: one WebSocket message, whole.
  await xmpp.send(xml("message", { to: args.peer, type: "chat" }, xml("body", {}, "big:" + "y".repeat(100000))));
  console.log("sent");
});

xmpp.start().catch((err) => {
  console.log(`start failed: ${err.condition || ""} ${err.message}`);
  process.exit(1);
});
