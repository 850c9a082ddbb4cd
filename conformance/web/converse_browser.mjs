// Browser driver for conformance/converse_test.go: headless Chromium (playwright-core, the system's chromium)
// opens converse.html, logs in through Converse.js's login form over XMPP over WebSocket, opens the chat with a
// contact from the contact list, waits for the contact's message, answers it by typing into the chat, uploads a
// file through the toolbar's file input (XEP-0363: Converse asks for a slot, PUTs the file and sends its URL),
// and saves a screenshot. Every step prints one JSON line on stdout ({"event": ...}), which the Go test waits
// for; page console output goes to stderr.
//
// Only loopback is reachable: any other request is aborted and reported as {"event":"blocked"}.
//
//   node converse_browser.mjs --page 'http://127.0.0.1:8080/?loglevel=debug&ws=ws://127.0.0.1:5280/xmpp-websocket' \
//     --jid alice@localhost --password secret --peer bob@localhost --expect "hi" --send "hello" \
//     --file photo.png --screenshot out.png [--chromium /usr/bin/chromium] [--timeout 45]
import { chromium } from "playwright-core";
import { basename } from "node:path";
import { statSync } from "node:fs";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
for (const k of ["page", "jid", "password", "peer", "expect", "send", "file", "screenshot"]) {
  if (!args[k]) {
    console.error(`missing --${k}`);
    process.exit(64);
  }
}
const timeout = Number(args.timeout || 45) * 1000;
const step = Math.min(15_000, timeout);

function report(event, fields = {}) {
  console.log(JSON.stringify({ event, ...fields }));
}

const loopback = new Set(["127.0.0.1", "localhost", "[::1]"]);

let browser;
let page;
const timer = setTimeout(() => fail(new Error(`timeout after ${timeout / 1000}s`)), timeout);

async function fail(err) {
  report("error", { message: String(err?.message || err) });
  // A picture of the page as it was helps more than the stack.
  if (page) {
    try {
      const boxes = await page.evaluate(() =>
        Array.from(document.querySelectorAll(".chatbox"), (e) =>
          [e.tagName.toLowerCase(), ...Array.from(e.attributes, (a) => `${a.name}="${a.value}"`)].join(" "),
        ),
      );
      report("failure-chatboxes", { boxes });
    } catch {}
    const path = args.screenshot.replace(/\.png$/, "") + "-failure.png";
    try {
      await page.screenshot({ path, timeout: 5000 });
      report("failure-screenshot", { path });
    } catch {}
  }
  try {
    await browser?.close();
  } catch {}
  process.exit(1);
}

async function main() {
  browser = await chromium.launch({
    executablePath: args.chromium || "/usr/bin/chromium",
    headless: true,
    // launch() gives every run a fresh temporary profile and removes it on close.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // The upload URLs are on Parley's HTTPS listener, whose certificate is self-signed in the tests.
      "--ignore-certificate-errors",
    ],
  });
  report("launched", { browser: browser.version() });
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    locale: "en-US",
    timezoneId: "UTC",
    colorScheme: "light",
  });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (loopback.has(url.hostname) || url.protocol === "data:" || url.protocol === "blob:") {
      return route.continue();
    }
    report("blocked", { url: url.href });
    return route.abort("blockedbyclient");
  });
  page = await context.newPage();
  page.setDefaultTimeout(step);
  page.on("console", (m) => {
    // Converse at loglevel debug logs every stanza as "%c%s color: darkcyan <iq…>" (sent) or darkgoldenrod
    // (received): written as a C:/S: transcript.
    const x = /^%c%s color: (darkcyan|darkgoldenrod) ([\s\S]*)$/.exec(m.text());
    if (x) console.error(`${x[1] === "darkcyan" ? "C:" : "S:"} ${x[2].replace(/\s*\n\s*/g, "")}`);
    else console.error(`console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => console.error(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => console.error(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) console.error(`http ${r.status()}: ${r.request().method()} ${r.url()}`);
  });

  await page.goto(args.page);
  // Log in as a person would: the login form of the control box.
  await page.locator("converse-login-form input[name=jid]").fill(args.jid);
  await page.locator("converse-login-form input[name=password]").fill(args.password);
  await page.locator("converse-login-form button[type=submit]").click();
  await page.waitForFunction(
    () => window.parleyTest.connected && window.parleyTest.events.includes("statusInitialized"),
  );
  const jid = await page.evaluate(() => window.parleyTest.jid);

  // Open the chat as a person would: click the peer in the contact list. (The peer is a contact: Converse 12
  // to 14 cannot open a chat with a stranger on a server without XEP-0191 blocking, as it waits for the block
  // list first.)
  await page.locator(`converse-roster a.open-chat[data-jid="${args.peer}"]`).click();
  const chat = page.locator(`converse-chat[jid="${args.peer}"]`);
  await chat.locator("textarea.chat-textarea").waitFor();
  report("online", { jid });

  // The peer writes first (the Go test sends on "online").
  await chat.locator(".chat-msg__text", { hasText: args.expect }).waitFor();
  report("received", { text: args.expect });

  const textarea = chat.locator("textarea.chat-textarea");
  await textarea.click();
  await textarea.pressSequentially(args.send, { delay: 10 });
  await textarea.press("Enter");
  await chat.locator(".chat-msg__text", { hasText: args.send }).waitFor();
  report("sent", { text: args.send });

  // The toolbar shows its file input once Converse has found the upload service through disco.
  const input = chat.locator("converse-chat-toolbar input.fileupload");
  await input.waitFor({ state: "attached" });
  await input.setInputFiles(args.file);
  const name = basename(args.file);
  // When the PUT is done, Converse sends the GET URL (body and jabber:x:oob) and shows it: an image inline.
  const media = chat.locator(`img[src*="${encodeURIComponent(name)}"], a[href*="${encodeURIComponent(name)}"]`).first();
  await media.waitFor();
  const url = await media.evaluate((el) => el.src || el.href);
  if ((await media.evaluate((el) => el.tagName)) === "IMG") {
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await media.elementHandle());
  }
  report("uploaded", { url });

  await page.waitForTimeout(300); // let the last layout settle for the picture
  await page.screenshot({ path: args.screenshot });
  report("screenshot", { path: args.screenshot, bytes: statSync(args.screenshot).size });
  await browser.close();
  clearTimeout(timer);
  report("done");
}

main().catch(fail);
