'use strict';
/*
 * Tests examples/echo against headless Chromium's WebSocket.
 *
 * Usage: node tests/peers/test_chromium.js BUILDDIR
 * (NODE_PATH must reach playwright-core; the browser is the system's
 * /usr/bin/chromium and is never downloaded.)  The echo server serves no
 * HTML, so the page comes from a small HTTP server inside this script on
 * 127.0.0.1, which makes it a secure context (crypto.subtle works).  The
 * page makes every message from a seeded generator, compares every echoed
 * byte itself and returns the SHA-256 of what it received; this script
 * runs the same generator and compares that hash too.  The seed is
 * printed; set PEERS_SEED to repeat a run.
 * Every check runs twice: over ws://, then over wss:// (echo --cert
 * --key, a self-signed certificate made at run time that Chromium is
 * told to ignore; those checks are named "wss: ...").  On libmicrohttpd
 * 0.9.x, whose TLS relay moves 4 bytes at a time, the bulk checks
 * (messages above 64 KiB) are skipped over wss:// with a note.
 * The last line printed is "N passed, N failed".
 */

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { TIMEOUT, report, summary, builddirArg, runMain, withTimeout, fail,
  timedCheck, need, chromiumOptions, startServer, stopServer,
  makeCertificate, slowTlsRelay } = require('./harness');

const MIB = 1024 * 1024;
/* Around the frame length encodings (7 bit, 16 bit, 64 bit) and large. */
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, MIB, 10 * MIB];

/*
 * Exactly n random bytes, or n bytes of valid UTF-8 with 1-, 2-, 3- and
 * 4-byte characters mixed (no surrogates), from a seeded generator
 * (mulberry32).  Runs both here and, as source text, in the page.
 */
function genBytes (seed, n, utf8) {
  let a = seed >>> 0;
  const rng = function () {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  };
  const b = new Uint8Array(n);
  let i = 0;
  if (!utf8) {
    for (; i < n; i++)
      b[i] = rng() & 0xff;
    return b;
  }
  while (i < n) {
    const len = 1 + rng() % Math.min(4, n - i);
    const r = rng();
    if (len === 1) {
      b[i++] = r & 0x7f;
    } else if (len === 2) {
      const cp = 0x80 + r % (0x800 - 0x80);
      b[i++] = 0xc0 | (cp >> 6);
      b[i++] = 0x80 | (cp & 0x3f);
    } else if (len === 3) {
      let cp = 0x800 + r % (0x10000 - 0x800 - 0x800);
      if (cp >= 0xd800)
        cp += 0x800; /* skip the surrogates */
      b[i++] = 0xe0 | (cp >> 12);
      b[i++] = 0x80 | ((cp >> 6) & 0x3f);
      b[i++] = 0x80 | (cp & 0x3f);
    } else {
      const cp = 0x10000 + r % (0x110000 - 0x10000);
      b[i++] = 0xf0 | (cp >> 18);
      b[i++] = 0x80 | ((cp >> 12) & 0x3f);
      b[i++] = 0x80 | ((cp >> 6) & 0x3f);
      b[i++] = 0x80 | (cp & 0x3f);
    }
  }
  return b;
}

/* The page's helpers: an echo round trip and a close, both returning
   plain data for this script to judge. */
const PAGE_SCRIPT = genBytes.toString() + `
function firstDifference (a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++)
    if (a[i] !== b[i])
      return i;
  return n;
}
async function sha256 (bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
}
function openSocket (url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('connection failed'));
  });
}
/* Sends each message (seed, size, text?) in order on one connection and
   checks the echoes; returns one result per message. */
async function echoMessages (url, specs) {
  const ws = await openSocket(url);
  const results = [];
  const sent = [];
  const done = new Promise((resolve, reject) => {
    ws.onmessage = (e) => {
      const k = results.length;
      const spec = specs[k];
      const want = sent[k];
      const r = { kind: typeof e.data === 'string' ? 'text' : 'binary' };
      results.push(r);
      let got;
      if (typeof e.data === 'string') {
        r.equal = e.data === want.value;
        got = new TextEncoder().encode(e.data);
      } else {
        got = new Uint8Array(e.data);
      }
      r.length = got.length;
      r.firstDifference = firstDifference(want.bytes, got);
      if (got.length !== want.bytes.length ||
          r.firstDifference !== got.length)
        r.equal = false;
      else if (r.equal === undefined)
        r.equal = true;
      r.hashInput = got;
      if (results.length === specs.length)
        resolve();
    };
    ws.onclose = (e) => reject(new Error('closed with ' + e.code + ' ' +
      JSON.stringify(e.reason) + ' after ' + results.length + ' echoes'));
  });
  for (const s of specs) {
    const bytes = genBytes(s.seed, s.size, s.text);
    const value = s.text
      ? new TextDecoder('utf-8', { fatal: true }).decode(bytes)
      : bytes.buffer;
    sent.push({ bytes, value });
    ws.send(value);
  }
  await done;
  for (const r of results) {
    r.sha256 = await sha256(r.hashInput);
    delete r.hashInput;
  }
  ws.onclose = null;
  ws.close(1000);
  return results;
}
/* What the browser agreed on (WebSocket.extensions) for a fresh
   connection. */
async function extensionsOf (url) {
  const ws = await openSocket(url);
  const e = ws.extensions;
  ws.close(1000);
  return e;
}
/* Optionally sends one message, then closes with code and reason (or
   waits for the server to close); returns the CloseEvent's fields. */
async function closeWith (url, code, reason, sendBytes) {
  const ws = await openSocket(url);
  const echoes = [];
  ws.onmessage = (e) => echoes.push(e.data);
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason,
      wasClean: e.wasClean, echoes: echoes.length });
  });
  if (sendBytes !== undefined)
    ws.send(new Uint8Array(sendBytes));
  if (code !== undefined)
    ws.close(code, reason);
  return closed;
}
`;

function pageHtml () {
  return '<!DOCTYPE html>\n<html><head><meta charset="utf-8">' +
    '<title>echo peer</title></head><body>\n<script>\n' + PAGE_SCRIPT +
    '</script>\n</body></html>\n';
}

/* ------------------------------------------------------------ servers */

/* The page's own origin: an HTTP server on 127.0.0.1 in this process. */
function startPageServer () {
  return new Promise((resolve, reject) => {
    const html = Buffer.from(pageHtml());
    const srv = http.createServer((req, res) => {
      if (req.url !== '/') {
        res.writeHead(404);
        return res.end();
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8',
        'Content-Length': html.length });
      res.end(html);
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

/* ------------------------------------------------------------ tests */

/* The pass under way: over ws:// (pre '') or wss:// (pre 'wss: ', args
   --cert and --key); slow: the TLS relay moves 4 bytes at a time. */
const SCHEME = { pre: '', args: [], slow: false };

function check (label, fn, ms) {
  return timedCheck(SCHEME.pre + label, fn, ms);
}

/* check() of a bulk check (messages above 64 KiB): skipped over wss://
   on libmicrohttpd 0.9.x, with a note. */
async function bulkCheck (label, fn, ms) {
  if (SCHEME.pre && SCHEME.slow) {
    console.log('note: skipped ' + SCHEME.pre + label + ' (libmicrohttpd ' +
      '0.9.x relays TLS 4 bytes at a time)');
    return;
  }
  await check(label, fn, ms);
}

/* An echo server of this pass. */
function serve (echoPath, args) {
  return startServer(echoPath, SCHEME.args.concat(args));
}

function sha256 (bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function seedFor (seed, label) {
  let h = seed >>> 0;
  for (const ch of label)
    h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/* Judges what echoMessages returned against our own copy of the data. */
function judge (specs, results) {
  if (results.length !== specs.length)
    fail(results.length + ' echoes for ' + specs.length + ' messages');
  specs.forEach((s, k) => {
    const r = results[k];
    const what = (s.text ? 'text' : 'binary') + ' of ' + s.size + ' bytes';
    if (r.kind !== (s.text ? 'text' : 'binary'))
      fail(what + ' came back as ' + r.kind);
    if (!r.equal)
      fail(what + ': got ' + r.length + ' bytes, first difference at byte ' +
        r.firstDifference);
    const want = sha256(genBytes(s.seed, s.size, s.text));
    if (r.sha256 !== want)
      fail(what + ': SHA-256 of the echo differs from the data sent');
  });
}

async function run (page, echoPath, url, seed) {
  const echo = (specs) => withTimeout(
    page.evaluate(([u, s]) => echoMessages(u, s), [url, specs]), 50000,
    'echo in the page');

  for (const text of [true, false]) {
    const kind = text ? 'text (multi-byte UTF-8)' : 'binary (ArrayBuffer)';
    for (const size of SIZES) {
      const label = kind + ' message of ' + size + ' bytes is echoed';
      await (size > 65537 ? bulkCheck : check)(label, async () => {
        const specs = [{ seed: seedFor(seed, label), size, text }];
        judge(specs, await echo(specs));
      });
    }
  }

  await bulkCheck('100 mixed messages on one connection, in order',
    async () => {
      const lens = [0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, 100000];
      const specs = [];
      for (let i = 0; i < 100; i++)
        specs.push({ seed: seedFor(seed, 'mixed ' + i),
          size: lens[i % lens.length], text: i % 3 === 0 });
      judge(specs, await echo(specs));
    });

  await bulkCheck('4 concurrent connections each get their own echoes',
    async () => {
      const all = [0, 1, 2, 3].map((k) => {
        const specs = [];
        for (let i = 0; i < 20; i++)
          specs.push({ seed: seedFor(seed, 'conc ' + k + ' ' + i),
            size: [1, 126, 65536, 150000][(i + k) % 4], text: i % 2 === 0 });
        return specs;
      });
      const results = await withTimeout(page.evaluate(
        ([u, a]) => Promise.all(a.map((s) => echoMessages(u, s))),
        [url, all]), 50000, 'echo in the page');
      all.forEach((specs, k) => judge(specs, results[k]));
    });

  for (const [code, reason] of [[4321, 'bye \u00e9\u20ac\u{1F44B}'],
    [1000, ''], [3000, '\u00e9'.repeat(61) + 'x']]) {
    await check('close ' + code + ' with a ' + Buffer.byteLength(reason) +
      '-byte reason is echoed; CloseEvent is clean', async () => {
      const e = await withTimeout(page.evaluate(
        ([u, c, r]) => closeWith(u, c, r), [url, code, reason]), TIMEOUT,
      'close');
      if (e.code !== code || e.reason !== reason || e.wasClean !== true)
        fail('CloseEvent ' + JSON.stringify(e));
    });
  }

  /* permessage-deflate (RFC 7692): Chromium offers it on every
     connection, so every check above ran compressed; these make sure. */
  await check('Chromium agrees permessage-deflate (WebSocket.extensions)',
    async () => {
      const e = await withTimeout(page.evaluate(([u]) => extensionsOf(u),
        [url]), TIMEOUT, 'extensions');
      if (!/^permessage-deflate/.test(e))
        fail('extensions ' + JSON.stringify(e));
    });
  await bulkCheck('compressed: 1 MiB text and binary, and 200 more, ' +
    'round-trip',
    async () => {
      const specs = [{ seed: seedFor(seed, 'mib t'), size: 1048576,
        text: true }, { seed: seedFor(seed, 'mib b'), size: 1048576,
        text: false }];
      for (let i = 0; i < 200; i++)
        specs.push({ seed: seedFor(seed, 'small ' + i), size: 20 + i,
          text: i % 2 === 0 });
      judge(specs, await echo(specs));
    });
  await check('echo --no-deflate: no extension, messages still echoed',
    async () => {
      const srv = await serve(echoPath, ['--no-deflate', '0']);
      try {
        const e = await withTimeout(page.evaluate(([u]) => extensionsOf(u),
          [srv.url]), TIMEOUT, 'extensions');
        if (e !== '')
          fail('extensions ' + JSON.stringify(e));
        const specs = [{ seed: 3, size: 70000, text: true }];
        judge(specs, await withTimeout(page.evaluate(
          ([u, s]) => echoMessages(u, s), [srv.url, specs]), TIMEOUT,
        'echo'));
      } finally {
        await stopServer(srv.child);
      }
    });

  await check('a message over echo -m 1000 closes with 1009, cleanly',
    async () => {
      const srv = await serve(echoPath, ['-m', '1000', '0']);
      try {
        const specs = [{ seed: 1, size: 1000, text: true },
          { seed: 2, size: 1000, text: false }];
        judge(specs, await withTimeout(page.evaluate(
          ([u, s]) => echoMessages(u, s), [srv.url, specs]), TIMEOUT,
        'echo'));
        const e = await withTimeout(page.evaluate(
          ([u]) => closeWith(u, undefined, undefined, 1001), [srv.url]),
        TIMEOUT, 'close');
        if (e.code !== 1009 || e.wasClean !== true || e.echoes !== 0)
          fail('CloseEvent ' + JSON.stringify(e));
      } finally {
        const code = await stopServer(srv.child);
        if (code !== 0)
          fail('echo -m 1000 exit status ' + code);
      }
    });
}

async function main () {
  const builddir = builddirArg('test_chromium.js');
  if (!builddir)
    return 1;
  const pwc = need('playwright-core', 'playwright-core is installed');
  if (!pwc)
    return summary();
  const { chromium } = pwc;
  const seed = process.env.PEERS_SEED ? Number(process.env.PEERS_SEED)
    : Math.floor(Date.now() / 1000);
  console.log('seed ' + seed + ' (set PEERS_SEED to repeat)');
  const echoPath = path.join(builddir, 'examples', 'echo');
  let tls = null;
  let pages = null;
  let browser = null;
  try {
    tls = makeCertificate();
    SCHEME.slow = slowTlsRelay(builddir);
  } catch (e) {
    report(false, 'wss: a certificate and the libmicrohttpd version',
      e.message);
  }
  try {
    pages = await startPageServer();
    /* The wss:// pass uses a self-signed certificate. */
    browser = await chromium.launch(chromiumOptions(
      ['--ignore-certificate-errors']));
    for (const scheme of tls ? ['ws', 'wss'] : ['ws']) {
      SCHEME.pre = scheme === 'wss' ? 'wss: ' : '';
      SCHEME.args = scheme === 'wss' ? tls.args : [];
      let srv = null;
      try {
        srv = await serve(echoPath, ['0']);
        const page = await browser.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto('http://127.0.0.1:' + pages.address().port + '/',
          { timeout: TIMEOUT });
        await run(page, echoPath, srv.url, seed);
        report(errors.length === 0, SCHEME.pre +
          'no script errors in the page', JSON.stringify(errors));
        await page.close();
      } catch (e) {
        report(false, SCHEME.pre + 'setup', e.message);
      } finally {
        if (srv) {
          const code = await stopServer(srv.child);
          report(code === 0, SCHEME.pre + 'echo stops cleanly on SIGINT',
            'exit status ' + code);
        }
      }
    }
  } catch (e) {
    report(false, 'setup', e.message);
  } finally {
    if (browser)
      await withTimeout(browser.close(), TIMEOUT, 'browser close')
        .catch(() => {});
    if (pages)
      pages.close();
    if (tls)
      fs.rmSync(tls.dir, { recursive: true, force: true });
  }
  return summary();
}

runMain(main);
