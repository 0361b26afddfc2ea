'use strict';
/*
 * Tests examples/echo against node's `ws` client (npm ws 8.23.0).
 *
 * Usage: node tests/peers/test_node.js BUILDDIR
 * (NODE_PATH must reach ws.)  The echo server is started on a free port of
 * 127.0.0.1 and stopped by its PID.  Every message is random (the seed is
 * printed, set PEERS_SEED to repeat a run) and every echoed byte is
 * compared.  ws itself checks what the server sends: masking, UTF-8 of
 * text messages and close frames, frame sizes.
 * Every server check runs twice: over ws://, then over wss:// (echo
 * --cert --key, a self-signed certificate made at run time; those checks
 * are named "wss: ...").  On libmicrohttpd 0.9.x, whose TLS relay moves 4
 * bytes at a time, the bulk checks (messages above 64 KiB) are skipped
 * over wss:// with a note.
 * The last line printed is "N passed, N failed".
 */

const path = require('path');
const { spawn } = require('child_process');
const fs = require('fs');
const { TIMEOUT, report, summary, builddirArg, runMain, withTimeout, fail,
  timedCheck, need, liveChildren, startServer, stopServer, makeCertificate,
  slowTlsRelay } = require('./harness');

const MIB = 1024 * 1024;
/* Around the frame length encodings (7 bit, 16 bit, 64 bit) and large. */
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, MIB, 10 * MIB];

let WebSocket;

/* The pass under way: over ws:// (pre '') or wss:// (pre 'wss: ', args
   --cert and --key); slow: the TLS relay moves 4 bytes at a time. */
const SCHEME = { pre: '', args: [], slow: false };

function check (label, fn, ms) {
  return timedCheck(SCHEME.pre + label, fn, ms);
}

/* Whether a bulk check (messages above 64 KiB) is skipped in this pass. */
function skipBulk (label) {
  if (!SCHEME.pre || !SCHEME.slow)
    return false;
  console.log('note: skipped ' + SCHEME.pre + label + ' (libmicrohttpd ' +
    '0.9.x relays TLS 4 bytes at a time)');
  return true;
}

/* check() of a bulk check. */
async function bulkCheck (label, fn, ms) {
  if (!skipBulk(label))
    await check(label, fn, ms);
}

/* An echo server of this pass. */
function serve (echoPath, args) {
  return startServer(echoPath, SCHEME.args.concat(args));
}
/* ------------------------------------------------------------ data */

/* A small seeded generator (mulberry32), so a failing run can be
   repeated with the same messages. */
function makeRng (seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  };
}

function randomBytes (rng, n) {
  const b = Buffer.alloc(n);
  let i = 0;
  for (; i + 4 <= n; i += 4)
    b.writeUInt32LE(rng(), i);
  for (; i < n; i++)
    b[i] = rng() & 0xff;
  return b;
}

/* Exactly n bytes of valid UTF-8 with 1-, 2-, 3- and 4-byte characters
   mixed (no surrogates). */
function randomUtf8 (rng, n) {
  const b = Buffer.alloc(n);
  let i = 0;
  while (i < n) {
    const left = n - i;
    const len = 1 + rng() % Math.min(4, left);
    const r = rng();
    let cp;
    if (len === 1) {
      cp = r & 0x7f;
    } else if (len === 2) {
      cp = 0x80 + r % (0x800 - 0x80);
    } else if (len === 3) {
      cp = 0x800 + r % (0x10000 - 0x800 - 0x800);
      if (cp >= 0xd800)
        cp += 0x800; /* skip the surrogates */
    } else {
      cp = 0x10000 + r % (0x110000 - 0x10000);
    }
    i += b.write(String.fromCodePoint(cp), i);
  }
  return b;
}

function firstDifference (a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++)
    if (a[i] !== b[i])
      return i;
  return n;
}

function expectEcho (sent, sentBinary, got, gotBinary, what) {
  if (gotBinary !== sentBinary)
    fail(what + ' came back as ' + (gotBinary ? 'binary' : 'text'));
  if (!Buffer.isBuffer(got))
    fail(what + ' came back as ' + typeof got);
  if (!sent.equals(got))
    fail(what + ': sent ' + sent.length + ' bytes, got ' + got.length +
      ', first difference at byte ' + firstDifference(sent, got));
}

/* ------------------------------------------------------------ client */

/* A connected client whose messages, pongs and close are queued for
   next() / nextPong() / closed. */
function open (url, options) {
  return new Promise((resolve, reject) => {
    /* wss://: the certificate is a self-signed one. */
    const ws = new WebSocket(url,
      Object.assign({ handshakeTimeout: TIMEOUT,
        rejectUnauthorized: false }, options || {}));
    const c = { ws, queue: [], waiters: [], pongs: [], pongWaiters: [],
      error: null };
    c.closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        c.closeInfo = { code, reason: reason.toString('utf8') };
        res(c.closeInfo);
        for (const w of c.waiters.splice(0))
          w.reject(new Error('closed with ' + code + ' ' +
            JSON.stringify(c.closeInfo.reason) +
            (c.error ? ' (' + c.error.message + ')' : '')));
      });
    });
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      if (c.waiters.length)
        c.waiters.shift().resolve(m);
      else
        c.queue.push(m);
    });
    ws.on('pong', (data) => {
      if (c.pongWaiters.length)
        c.pongWaiters.shift()(data);
      else
        c.pongs.push(data);
    });
    ws.on('error', (e) => {
      c.error = e;
      reject(e);
    });
    ws.on('open', () => resolve(c));
  });
}

function next (c, ms) {
  if (c.queue.length)
    return Promise.resolve(c.queue.shift());
  if (c.closeInfo)
    return Promise.reject(new Error('closed with ' + c.closeInfo.code));
  return withTimeout(new Promise((resolve, reject) => {
    c.waiters.push({ resolve, reject });
  }), ms || TIMEOUT, 'echo');
}

function nextPong (c) {
  if (c.pongs.length)
    return Promise.resolve(c.pongs.shift());
  return withTimeout(new Promise((resolve) => c.pongWaiters.push(resolve)),
    TIMEOUT, 'pong');
}

function send (c, data, opts) {
  return new Promise((resolve, reject) => {
    c.ws.send(data, opts, (e) => (e ? reject(e) : resolve()));
  });
}

async function closeWith (c, code, reason) {
  c.ws.close(code, reason);
  return withTimeout(c.closed, TIMEOUT, 'close');
}

/* ------------------------------------------------------------ tests */

async function run (echoPath, url, seed) {
  const rngFor = (label) => {
    let h = seed >>> 0;
    for (const ch of label)
      h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    return makeRng(h);
  };

  for (const binary of [false, true]) {
    const kind = binary ? 'binary' : 'text';
    for (const size of SIZES) {
      const label = kind + ' message of ' + size + ' bytes is echoed';
      if (size > 65537 && skipBulk(label))
        continue;
      await check(label, async () => {
        const rng = rngFor(label);
        const msg = binary ? randomBytes(rng, size) : randomUtf8(rng, size);
        const c = await open(url);
        try {
          await send(c, msg, { binary });
          const m = await next(c, 30000);
          expectEcho(msg, binary, m.data, m.isBinary, kind + ' of ' + size);
        } finally {
          c.ws.terminate();
        }
      });
    }
  }

  await bulkCheck('many messages on one connection, in order', async () => {
    const rng = rngFor('many');
    const lens = [0, 1, 7, 125, 126, 127, 1000, 65535, 65536, 70000];
    const msgs = [];
    for (let i = 0; i < 200; i++) {
      const n = lens[rng() % lens.length];
      msgs.push({ binary: i % 2 === 0,
        data: i % 2 ? randomUtf8(rng, n) : randomBytes(rng, n) });
    }
    const c = await open(url);
    try {
      for (const m of msgs)
        c.ws.send(m.data, { binary: m.binary });
      for (let i = 0; i < msgs.length; i++) {
        const m = await next(c);
        expectEcho(msgs[i].data, msgs[i].binary, m.data, m.isBinary,
          'message ' + i);
      }
      const info = await closeWith(c, 1000);
      if (info.code !== 1000)
        fail('close code ' + info.code);
    } finally {
      c.ws.terminate();
    }
  });

  /* Sends msg as fragments cut at the given offsets, with fin:false on
     all but the last; text is cut in the middle of characters too. */
  async function fragmented (label, binary, size, cuts) {
    if (size > 65537 && skipBulk(label))
      return;
    await check(label, async () => {
      const rng = rngFor(label);
      const msg = binary ? randomBytes(rng, size) : randomUtf8(rng, size);
      const c = await open(url);
      try {
        let at = 0;
        for (const cut of cuts.concat([size])) {
          await send(c, msg.subarray(at, cut),
            { binary, fin: cut === size });
          at = cut;
        }
        const m = await next(c, 30000);
        expectEcho(msg, binary, m.data, m.isBinary, 'fragmented ' +
          (binary ? 'binary' : 'text'));
      } finally {
        c.ws.terminate();
      }
    });
  }
  await fragmented('fragmented text, cut inside characters, is echoed whole',
    false, 300000, [1, 2, 3, 5, 8, 13, 125, 126, 65537, 65537, 200001]);
  await fragmented('fragmented binary message is echoed whole', true, MIB,
    [0, 1, 126, 65536, 65537, 500000]);
  await check('every byte of a text message in its own fragment', async () => {
    const rng = rngFor('bytewise');
    const msg = randomUtf8(rng, 2000);
    const c = await open(url);
    try {
      for (let i = 0; i < msg.length; i++)
        c.ws.send(msg.subarray(i, i + 1),
          { binary: false, fin: i === msg.length - 1 });
      const m = await next(c);
      expectEcho(msg, false, m.data, m.isBinary, 'bytewise text');
    } finally {
      c.ws.terminate();
    }
  });
  await check('ping between fragments is answered before the echo',
    async () => {
      const rng = rngFor('ping-mid');
      const msg = randomUtf8(rng, 1000);
      const c = await open(url);
      try {
        await send(c, msg.subarray(0, 501), { binary: false, fin: false });
        c.ws.ping(Buffer.from('mid-message'));
        const pong = await nextPong(c);
        if (pong.toString() !== 'mid-message')
          fail('pong payload ' + JSON.stringify(pong.toString()));
        if (c.queue.length)
          fail('a message came back before the last fragment');
        await send(c, msg.subarray(501), { binary: false, fin: true });
        const m = await next(c);
        expectEcho(msg, false, m.data, m.isBinary, 'interrupted message');
      } finally {
        c.ws.terminate();
      }
    });

  /* ws does not check the text it sends, so it can carry broken UTF-8;
     the decoder must judge the message as a whole, across fragments. */
  const bad = [
    ['a sequence cut by the end of the message', ['ok \xe2\x82'], 1007],
    ['a bad continuation in the next fragment', ['ok \xe2\x82', '(x'], 1007],
    ['a surrogate split over fragments', ['\xed', '\xa0\x80'], 1007],
    ['an overlong encoding', ['\xc0\x80'], 1007],
    ['a code point above U+10FFFF', ['\xf4\x90\x80\x80'], 1007],
    ['a valid 4-byte character split 1+1+1+1', ['\xf0', '\x9f', '\x98',
      '\x80'], 0]
  ];
  for (const [what, frags, code] of bad) {
    await check('text with ' + what + (code ? ' is closed with ' + code
      : ' is echoed'), async () => {
      const bufs = frags.map((f) => Buffer.from(f, 'latin1'));
      const c = await open(url);
      try {
        bufs.forEach((b, i) => c.ws.send(b,
          { binary: false, fin: i === bufs.length - 1 }));
        if (code) {
          const info = await withTimeout(c.closed, TIMEOUT, 'close');
          if (info.code !== code)
            fail('close code ' + info.code);
          if (c.queue.length)
            fail('the broken text came back');
        } else {
          const m = await next(c);
          expectEcho(Buffer.concat(bufs), false, m.data, m.isBinary,
            'split character');
        }
      } finally {
        c.ws.terminate();
      }
    });
  }

  await check('pings get pongs with the same payloads', async () => {
    const rng = rngFor('pings');
    const c = await open(url);
    try {
      for (const n of [0, 1, 64, 125]) {
        const payload = randomBytes(rng, n);
        c.ws.ping(payload);
        const pong = await nextPong(c);
        if (!payload.equals(pong))
          fail('ping of ' + n + ' bytes: pong ' + pong.toString('hex'));
      }
      /* Unsolicited pongs are ignored; the connection keeps echoing. */
      c.ws.pong(Buffer.from('unsolicited'));
      await send(c, Buffer.from('after pings'), { binary: false });
      const m = await next(c);
      expectEcho(Buffer.from('after pings'), false, m.data, m.isBinary,
        'message after pings');
    } finally {
      c.ws.terminate();
    }
  });

  for (const [code, reason] of [[4321, 'bye \u00e9\u20ac\u{1F44B}'],
    [1000, ''], [3000, '\u00e9'.repeat(61) + 'x'], [1001, 'going']]) {
    await check('close ' + code + ' with a ' + Buffer.byteLength(reason) +
      '-byte reason is echoed', async () => {
      const c = await open(url);
      try {
        const info = await closeWith(c, code, reason);
        if (info.code !== code || info.reason !== reason)
          fail('got ' + info.code + ' ' + JSON.stringify(info.reason));
      } finally {
        c.ws.terminate();
      }
    });
  }

  await bulkCheck('8 concurrent connections each get their own echoes',
    async () => {
      const lens = [0, 1, 126, 3000, 65536, 200000];
      await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async (k) => {
        const rng = rngFor('concurrent ' + k);
        const msgs = [];
        for (let i = 0; i < 25; i++) {
          const n = lens[rng() % lens.length];
          const binary = (i + k) % 2 === 0;
          msgs.push({ binary,
            data: binary ? randomBytes(rng, n) : randomUtf8(rng, n) });
        }
        const c = await open(url);
        try {
          for (const m of msgs)
            c.ws.send(m.data, { binary: m.binary });
          for (let i = 0; i < msgs.length; i++) {
            const m = await next(c, 30000);
            expectEcho(msgs[i].data, msgs[i].binary, m.data, m.isBinary,
              'client ' + k + ' message ' + i);
          }
          const info = await closeWith(c, 4000 + k, 'client ' + k);
          if (info.code !== 4000 + k || info.reason !== 'client ' + k)
            fail('client ' + k + ' close ' + info.code + ' ' + info.reason);
        } finally {
          c.ws.terminate();
        }
      }));
    });

  await check('message at the -m limit is echoed, one byte more is closed ' +
    'with 1009', async () => {
    const rng = rngFor('limit');
    const srv = await serve(echoPath, ['-m', '1000', '0']);
    try {
      let c = await open(srv.url);
      try {
        const msg = randomUtf8(rng, 1000);
        await send(c, msg, { binary: false });
        const m = await next(c);
        expectEcho(msg, false, m.data, m.isBinary, '1000-byte message');
      } finally {
        c.ws.terminate();
      }
      for (const frags of [[1001], [600, 401], [1000, 0, 1]]) {
        c = await open(srv.url);
        try {
          frags.forEach((n, i) => c.ws.send(randomBytes(rng, n),
            { binary: true, fin: i === frags.length - 1 }));
          const info = await withTimeout(c.closed, TIMEOUT, 'close');
          if (info.code !== 1009)
            fail('fragments ' + frags.join('+') + ': close code ' +
              info.code);
          if (c.queue.length)
            fail('the oversized message came back');
        } finally {
          c.ws.terminate();
        }
      }
    } finally {
      const code = await stopServer(srv.child);
      if (code !== 0)
        fail('echo -m 1000 exit status ' + code);
    }
  });
}

/* ------------------------------------------------------------ deflate */

/* permessage-deflate (RFC 7692) both ways: ws's client against
   examples/echo with each parameter, and examples/client (echo mode)
   against a ws server with each parameter.  threshold 0 makes ws
   compress every message, however small. */
const DEFLATE_OPTIONS = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true },
  { serverMaxWindowBits: 9 },
  { clientMaxWindowBits: 9 },
  { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
  { serverNoContextTakeover: true, clientNoContextTakeover: true,
    serverMaxWindowBits: 10, clientMaxWindowBits: 11 }
];
const DEFLATE_SIZES = [0, 1, 5, 125, 300, 4096, 70000, MIB];

function chatJson (rng, i) {
  return JSON.stringify({ type: 'message', room: 'general',
    user: 'user' + (rng() % 50), text: 'message number ' + i + ' ' +
    'x'.repeat(rng() % 100), ts: 1700000000 + i });
}

async function deflateTests (echoPath, clientPath, seed) {
  const rng = makeRng(seed ^ 0x5eed);
  const srv = await serve(echoPath, ['0']);
  try {
    for (const o of DEFLATE_OPTIONS) {
      const opts = Object.assign({ threshold: 0 }, o);
      const label = 'server: ws client with perMessageDeflate ' +
        JSON.stringify(o) + ' round-trips every size';
      if (skipBulk(label))
        continue;
      await check(label, async () => {
        const c = await open(srv.url, { perMessageDeflate: opts,
          maxPayload: 64 * MIB });
        try {
          if (!/^permessage-deflate/.test(c.ws.extensions))
            fail('extensions: ' + JSON.stringify(c.ws.extensions));
          for (const size of DEFLATE_SIZES) {
            for (const binary of [false, true]) {
              const msg = binary ? randomBytes(rng, size)
                : (size > 4096 ? Buffer.from('{"k":"v"},'.repeat(size / 10))
                  : randomUtf8(rng, size));
              await send(c, msg, { binary, compress: true });
              const m = await next(c, 30000);
              expectEcho(msg, binary, m.data, m.isBinary, size + ' bytes');
            }
          }
          /* Fragmented and compressed: one deflate stream across them. */
          const big = randomUtf8(rng, 100000);
          let at = 0;
          for (const cut of [1, 7, 5000, 65536, 100000]) {
            await send(c, big.subarray(at, cut),
              { binary: false, fin: cut === 100000, compress: true });
            at = cut;
          }
          const m = await next(c, 30000);
          expectEcho(big, false, m.data, m.isBinary, 'fragmented');
          for (let i = 0; i < 200; i++) {
            const j = Buffer.from(chatJson(rng, i));
            await send(c, j, { binary: false, compress: true });
            expectEcho(j, false, (await next(c)).data, false, 'chat ' + i);
          }
        } finally {
          c.ws.terminate();
        }
      }, 120000);
    }
    await check('server: a compressed bomb is closed with 1009', async () => {
      const c = await open(srv.url, { perMessageDeflate: { threshold: 0 } });
      try {
        /* 64 MiB of zeros compress to 64 KiB; the echo's limit is 16 MiB. */
        c.ws.send(Buffer.alloc(64 * MIB), { binary: true, compress: true });
        const info = await withTimeout(c.closed, 30000, 'close');
        if (info.code !== 1009)
          fail('close code ' + info.code);
      } finally {
        c.ws.terminate();
      }
    }, 60000);
  } finally {
    const code = await stopServer(srv.child);
    report(code === 0, SCHEME.pre + 'echo (deflate run) stops cleanly',
      'exit ' + code);
  }

  const plain = await serve(echoPath, ['--no-deflate', '0']);
  try {
    await check('server: echo --no-deflate declines, messages still pass',
      async () => {
        const c = await open(plain.url, { perMessageDeflate: true });
        try {
          if (c.ws.extensions !== '')
            fail('extensions: ' + JSON.stringify(c.ws.extensions));
          await send(c, 'plain', { binary: false });
          expectEcho(Buffer.from('plain'), false, (await next(c)).data, false,
            'plain');
        } finally {
          c.ws.terminate();
        }
      });
  } finally {
    await stopServer(plain.child);
  }

  /* Client mode: examples/client -e echoes what a ws server sends (over
     ws:// only: it is our client that is tested). */
  if (SCHEME.pre)
    return;
  for (const o of DEFLATE_OPTIONS.concat([false])) {
    await check('client: examples/client against a ws server with ' +
      'perMessageDeflate ' + JSON.stringify(o), async () => {
      const wss = new WebSocket.Server({ port: 0, host: '127.0.0.1',
        perMessageDeflate: o === false ? false
          : Object.assign({ threshold: 0 }, o), maxPayload: 64 * MIB });
      await new Promise((resolve) => wss.once('listening', resolve));
      const port = wss.address().port;
      const conn = new Promise((resolve) => wss.once('connection',
        (ws, req) => resolve({ ws, req })));
      const proc = spawn(clientPath, ['-e', 'ws://127.0.0.1:' + port + '/'],
        { stdio: ['ignore', 'ignore', 'inherit'] });
      liveChildren.add(proc);
      const exited = new Promise((resolve) => proc.once('exit', (code) => {
        liveChildren.delete(proc);
        resolve(code);
      }));
      try {
        const { ws, req } = await withTimeout(conn, TIMEOUT, 'connection');
        const offer = req.headers['sec-websocket-extensions'] || '';
        if (!/permessage-deflate/.test(offer))
          fail('the client offered ' + JSON.stringify(offer));
        if (o !== false && !/^permessage-deflate/.test(ws.extensions))
          fail('not agreed: ' + JSON.stringify(ws.extensions));
        const queue = [];
        const waiters = [];
        ws.on('message', (d, bin) => {
          const m = { data: d, isBinary: bin };
          if (waiters.length) waiters.shift()(m); else queue.push(m);
        });
        const nextMsg = () => queue.length ? Promise.resolve(queue.shift())
          : withTimeout(new Promise((r) => waiters.push(r)), 30000, 'echo');
        for (const size of DEFLATE_SIZES) {
          for (const binary of [false, true]) {
            const msg = binary ? randomBytes(rng, size) : randomUtf8(rng, size);
            ws.send(msg, { binary, compress: true });
            const m = await nextMsg();
            expectEcho(msg, binary, m.data, m.isBinary, size + ' bytes');
          }
        }
        for (let i = 0; i < 100; i++) {
          const j = Buffer.from(chatJson(rng, i));
          ws.send(j, { binary: false, compress: true });
          expectEcho(j, false, (await nextMsg()).data, false, 'chat ' + i);
        }
        ws.close(1000);
        const code = await withTimeout(exited, TIMEOUT, 'client exit');
        if (code !== 0)
          fail('client exit status ' + code);
      } finally {
        proc.kill('SIGKILL');
        for (const c of wss.clients) c.terminate();
        wss.close();
      }
    }, 120000);
  }
}

async function main () {
  const builddir = builddirArg('test_node.js');
  if (!builddir)
    return 1;
  WebSocket = need('ws', 'the ws package is installed');
  if (!WebSocket)
    return summary();
  const seed = process.env.PEERS_SEED ? Number(process.env.PEERS_SEED)
    : Math.floor(Date.now() / 1000);
  console.log('seed ' + seed + ' (set PEERS_SEED to repeat)');
  const echoPath = path.join(builddir, 'examples', 'echo');
  let tls = null;
  try {
    tls = makeCertificate();
    SCHEME.slow = slowTlsRelay(builddir);
  } catch (e) {
    report(false, 'wss: a certificate and the libmicrohttpd version',
      e.message);
  }
  for (const scheme of tls ? ['ws', 'wss'] : ['ws']) {
    SCHEME.pre = scheme === 'wss' ? 'wss: ' : '';
    SCHEME.args = scheme === 'wss' ? tls.args : [];
    let srv = null;
    try {
      srv = await serve(echoPath, ['0']);
      await run(echoPath, srv.url, seed);
      await deflateTests(echoPath, path.join(builddir, 'examples',
        'client'), seed);
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
  if (tls)
    fs.rmSync(tls.dir, { recursive: true, force: true });
  return summary();
}

runMain(main);
