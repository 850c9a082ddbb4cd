// xmpp.js peer for conformance/fast_test.go (issue 13, acceptance 1): logs in over WebSocket with SASL2 and
// Bind 2 (stream management enabled inline) with its password and asks for a FAST token (XEP-0484); when the
// connection drops it reconnects with the token alone (no password is given to it any more) and resumes the
// stream-management session inline in the same SASL2 <authenticate/>. Every step prints one line on stdout:
//
//   online <jid> sm=<on|off>     after the password login
//   token <mechanism>            a FAST token was received
//   resumed                      the reconnect resumed the session
//   message <body>               a message arrived
//
//   node xmppjs_fast.mjs --service ws://127.0.0.1:5280/xmpp-websocket --domain localhost --username alice \
//     --password secret --peer bob@localhost [--timeout 30]
import { client, xml } from "@xmpp/client";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
for (const k of ["service", "domain", "username", "password", "peer"]) {
  if (!args[k]) {
    console.error(`missing --${k}`);
    process.exit(64);
  }
}
const timeout = Number(args.timeout || 30) * 1000;
const userAgent = xml("user-agent", { id: "3b8f0c1e-6a2d-4f57-9c1b-parley-fast-test" }, xml("software", {}, "xmpp.js"), xml("device", {}, "conformance"));

let passwordLogins = 0;
let tokenLogins = 0;
const xmpp = client({
  service: args.service,
  domain: args.domain,
  resource: "phone",
  // Chooses what to authenticate with: the password the first time, after that the FAST token only.
  credentials: async (authenticate, mechanisms, fast) => {
    const token = await fast?.fetch();
    if (token) {
      tokenLogins++;
      console.error(`authenticating with the FAST token (${token.mechanism}), no password`);
      await authenticate({ username: args.username, token }, mechanisms[0], userAgent);
      return;
    }
    if (passwordLogins > 0) {
      console.log("fail: no token to reconnect with");
      process.exit(3);
    }
    passwordLogins++;
    await authenticate({ username: args.username, password: args.password }, mechanisms[0], userAgent);
  },
});
xmpp.reconnect.delay = 200;

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(2);
}, timeout);

xmpp.on("error", (err) => console.log(`error ${err.condition || ""} ${err.message}`));
xmpp.on("status", (status) => console.error(`status ${status}`));
const short = (el) => {
  const s = el.toString();
  return s.length > 400 ? s.slice(0, 400) + `... (${s.length} bytes)` : s;
};
xmpp.on("element", (el) => console.error(`S: ${short(el)}`));
xmpp.on("send", (el) => console.error(`C: ${short(el)}`));

xmpp.on("online", async (address) => {
  // xmpp.js goes online before it reads the rest of <bound/> (the <enabled/> of stream management).
  await new Promise((resolve) => setImmediate(resolve));
  console.log(`online ${address.toString()} sm=${xmpp.streamManagement.enabled ? "on" : "off"}`);
  const token = await xmpp.fast.fetch();
  if (token) console.log(`token ${token.mechanism}`);
  await xmpp.send(xml("presence"));
});

xmpp.streamManagement.on("resumed", async () => {
  console.log(`resumed token-logins=${tokenLogins} password-logins=${passwordLogins}`);
  await xmpp.send(xml("message", { to: args.peer, type: "chat" }, xml("body", {}, "resumed with FAST")));
});

xmpp.on("stanza", async (stanza) => {
  if (!stanza.is("message") || stanza.attrs.type === "error") return;
  const body = stanza.getChildText("body");
  if (body === null) return;
  console.log(`message ${body}`);
  if (body === "bye") {
    clearTimeout(timer);
    await xmpp.stop();
    process.exit(0);
  }
});

xmpp.start().catch((err) => {
  console.log(`start failed: ${err.condition || ""} ${err.message}`);
  process.exit(1);
});
