'use strict';
/*
 * End-to-end test of examples/chatserver with two headless Chromium pages:
 * both load the chat page the server serves, join the way a user does
 * (type a name, click Join), one types a message and presses Enter, and
 * the other must show it.  A screenshot of the receiving page is kept as
 * BUILDDIR/tests/artifacts/chat.png.  The whole scenario runs twice: over
 * http:// and ws://, then over https:// and wss:// with a self-signed
 * certificate made at run time by `openssl req` (Chromium is told to
 * ignore certificate errors).
 *
 * Usage: node tests/peers/test_chat_e2e.js BUILDDIR
 * (NODE_PATH must reach playwright-core; Chromium is /usr/bin/chromium and
 * is never downloaded.)  The last line printed is "N passed, N failed".
 */

const fs = require('fs');
const path = require('path');
const os = require('os');
const { execFileSync } = require('child_process');
const { TIMEOUT, report, summary, builddirArg, runMain, withTimeout, check,
  need, chromiumOptions, startServer, stopServer } = require('./harness');

/* The text of every line of a page's chat log. */
function logLines (page) {
  return page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
}

async function waitForLine (page, pred, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const lines = await logLines(page);
    if (lines.some(pred))
      return lines;
    if (Date.now() > deadline)
      throw new Error(what + ' not shown; log: ' + JSON.stringify(lines));
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function join (page, url, name) {
  await page.bringToFront();
  await page.goto(url, { timeout: TIMEOUT });
  await page.fill('#name', name, { timeout: TIMEOUT });
  await page.click('#join', { timeout: TIMEOUT });
  await page.waitForSelector('#state.on', { timeout: TIMEOUT });
}

/* One run of the chat scenario; tls is null or { cert, key } (PEM files). */
async function scenario (builddir, chromium, tls) {
  const pre = tls ? 'wss: ' : 'ws: ';
  const artifacts = path.join(builddir, 'tests', 'artifacts');
  const shot = path.join(artifacts, tls ? 'chat-wss.png' : 'chat.png');
  let server = null;
  let browser = null;
  try {
    server = await startServer(path.join(builddir, 'examples', 'chatserver'),
      tls ? ['--cert', tls.cert, '--key', tls.key, '0'] : ['0']);
    const url = (tls ? 'https' : 'http') + '://127.0.0.1:' + server.port +
      '/';
    browser = await chromium.launch(chromiumOptions(
      tls ? ['--ignore-certificate-errors'] : []));
    const ctx = await browser.newContext({ viewport: { width: 640,
      height: 400 } });
    /* Keeps the pages' WebSockets within reach, to read what the
       handshake agreed (the chat page keeps its socket private). */
    await ctx.addInitScript(() => {
      const Native = window.WebSocket;
      window.__sockets = [];
      window.WebSocket = function (url, protocols) {
        const ws = protocols === undefined ? new Native(url)
          : new Native(url, protocols);
        window.__sockets.push(ws);
        return ws;
      };
      window.WebSocket.prototype = Native.prototype;
      for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'])
        window.WebSocket[k] = Native[k];
    });
    const alice = await ctx.newPage();
    const bob = await ctx.newPage();
    const pageErrors = [];
    for (const p of [alice, bob])
      p.on('pageerror', (e) => pageErrors.push(e.message));

    await check(pre + 'alice joins and is welcomed by name', async () => {
      await join(alice, url, 'alice');
      await waitForLine(alice, (l) => l === 'You are alice (1 online).',
        'welcome');
      return (await alice.inputValue('#name')) === 'alice' ||
        'name field changed';
    });
    await check(pre + 'bob joins; alice sees the join announcement', async () => {
      await join(bob, url, 'bob');
      await waitForLine(bob, (l) => l === 'You are bob (2 online).',
        'welcome');
      await waitForLine(alice, (l) => l === 'bob joined (2 online).',
        'join announcement');
    });
    const text = 'Hello alice \u2014 gr\u00fc\u00dfe \u{1F600} <b>not bold</b>';
    await check(pre + 'bob types a message and presses Enter', async () => {
      if (await bob.isDisabled('#text'))
        return 'the message field is disabled';
      await bob.bringToFront();
      await bob.click('#text', { timeout: TIMEOUT });
      await bob.keyboard.type(text);
      await bob.keyboard.press('Enter');
      /* The page clears the field once it sent the message. */
      await bob.waitForFunction(
        () => document.getElementById('text').value === '', null,
        { timeout: TIMEOUT });
    });
    await check(pre + 'alice shows bob\'s message', async () => {
      await waitForLine(alice, (l) => l === 'bob:' + text, 'message');
      /* Shown as text: the markup in the message made no element. */
      const who = await alice.$$eval('#log li .who',
        (s) => s.map((x) => x.textContent));
      if (!who.includes('bob:'))
        return 'no sender name element: ' + JSON.stringify(who);
      if ((await alice.$$('#log b')).length !== 0)
        return 'the message was rendered as markup';
    });
    await check(pre + 'bob sees his own message', async () => {
      await waitForLine(bob, (l) => l === 'bob:' + text, 'message');
    });
    await check(pre + 'alice answers with the Send button', async () => {
      /* The user switches to alice's window (a background page's
         rendering is throttled). */
      await alice.bringToFront();
      await alice.fill('#text', 'hi bob', { timeout: TIMEOUT });
      await alice.click('#send', { timeout: TIMEOUT });
      await waitForLine(bob, (l) => l === 'alice:hi bob', 'reply');
    });
    await check(pre + 'both pages chat compressed (permessage-deflate, ' +
      'server_no_context_takeover)', async () => {
      for (const p of [alice, bob]) {
        const ext = await p.evaluate(() =>
          window.__sockets.map((w) => w.extensions));
        if (ext.length === 0 ||
            !/^permessage-deflate; server_no_context_takeover/.test(
              ext[ext.length - 1]))
          return 'extensions: ' + JSON.stringify(ext);
      }
    });
    await check(pre + 'screenshot of the receiving page is a PNG', async () => {
      fs.mkdirSync(artifacts, { recursive: true });
      try {
        fs.unlinkSync(shot);
      } catch (e) { /* not there yet */ }
      await alice.screenshot({ path: shot, timeout: TIMEOUT });
      const data = fs.readFileSync(shot);
      const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a,
        0x0a]);
      if (data.length <= sig.length)
        return 'the file has ' + data.length + ' bytes';
      if (!data.subarray(0, 8).equals(sig))
        return 'no PNG signature';
      /* IHDR holds the size: the viewport we asked for. */
      const w = data.readUInt32BE(16);
      const h = data.readUInt32BE(20);
      return (w === 640 && h === 400) || 'image is ' + w + 'x' + h;
    });
    await check(pre + 'bob clicks Leave; alice sees him leave', async () => {
      await bob.click('#join', { timeout: TIMEOUT });
      await waitForLine(bob, (l) => l === 'Disconnected (1000).',
        'own disconnect');
      await waitForLine(alice, (l) => l === 'bob left (1 online).', 'leave');
    });
    await check(pre + 'no script errors in the pages', async () =>
      pageErrors.length === 0 || JSON.stringify(pageErrors));
    await check(pre + 'alice is closed with 1001 when the server stops', async () => {
      const code = await stopServer(server.child);
      server = null;
      await waitForLine(alice,
        (l) => l === 'Disconnected (1001: server stopped).', 'going away');
      return code === 0 || 'server exit status ' + code;
    });
  } catch (e) {
    report(false, pre + 'setup', e.message);
  } finally {
    if (browser)
      await withTimeout(browser.close(), TIMEOUT, 'browser close')
        .catch(() => {});
    if (server) {
      const code = await stopServer(server.child);
      report(code === 0, pre + 'chatserver stops cleanly', 'exit status ' + code);
    }
  }
}

/* A self-signed certificate for 127.0.0.1 in a fresh directory. */
function makeCertificate () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { dir, cert, key };
}

async function main () {
  const builddir = builddirArg('test_chat_e2e.js');
  if (!builddir)
    return 1;
  const pwc = need('playwright-core', 'playwright-core is installed');
  if (!pwc)
    return summary();
  const { chromium } = pwc;
  await scenario(builddir, chromium, null);
  let tls = null;
  try {
    tls = makeCertificate();
  } catch (e) {
    report(false, 'wss: openssl req makes a certificate', e.message);
  }
  if (tls) {
    try {
      await scenario(builddir, chromium, tls);
    } finally {
      fs.rmSync(tls.dir, { recursive: true, force: true });
    }
  }
  return summary();
}

runMain(main);
