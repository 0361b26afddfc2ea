'use strict';
/*
 * Client-mode conformance suite: judges examples/client (the library in
 * MHD_WEBSOCKET_FLAG_CLIENT mode) against RFC 6455 from the server side.
 *
 * Usage: node tests/conformance/client-suite.js BUILDDIR
 *        (NODE_PATH must reach npm `ws`, see tests/package.json;
 *        tests/interop/run-all.sh sets it)
 *
 * One HTTP server on 127.0.0.1 (port 0) takes every upgrade.  Each case
 * starts BUILDDIR/examples/client once (mostly `-e`, echo mode) and plays
 * the server: valid traffic through `ws` (WebSocketServer, noServer), and
 * everything `ws` will not send (every frame type and length form,
 * fragments with control frames between them, invalid frames, bad
 * handshakes) by writing raw bytes to the upgraded socket.  Every byte the
 * client sends is parsed here too, so each case also checks that the
 * request is a valid version-13 upgrade and that every client frame is
 * masked with a fresh, non-zero key.
 *
 * Before our client is judged, the echo-mode cases whose rule npm `ws`
 * also keeps (every valid case, and the invalid-frame cases but three that
 * ws judges differently) run with npm `ws` as the client (this file run as
 * `--ref-echo URL`): they must pass, which shows that the server side and
 * the judging are right, for passing and for failing a connection.
 *
 * Each case is bounded by a timeout, after which the client is killed by
 * its PID.  One line per case, "N passed, N failed" last; exit status 1 on
 * any failure.  For development: CLIENT_SUITE_ONLY=REGEX runs the cases
 * whose "group: name" matches, CLIENT_SUITE_NO_REF=1 skips the reference.
 */

const crypto = require('crypto');
const http = require('http');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

let WebSocket, WebSocketServer;
try {
  ({ WebSocket, WebSocketServer } = require('ws'));
} catch (e) {
  console.log('npm ws is missing (npm ci --prefix tests; NODE_PATH=tests/node_modules)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CASE_TIMEOUT = 15000;
const MiB = 1024 * 1024;

/* ------------------------------------------------ reference client */

/*
 * npm ws as an echo client, in this process: what `client -e URL` must do.
 * Returns what runProc() returns, with an exit status as the client's (0
 * after a closing handshake, 1 when the connection failed).
 */
function refEcho(url) {
  let failed = false;
  let stderr = '';
  const proc = { exitCode: null, signalCode: null, stdin: null };
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * MiB });
  proc.kill = () => ws.terminate();
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (e) => {
    failed = true;
    stderr += `ref: ${e.message}\n`;
  });
  const exited = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      stderr += `ref: close ${code} ${reason}\n`;
      proc.exitCode = failed || code === 1006 ? 1 : 0;
      resolve({ code: proc.exitCode, signal: null, stdout: '', stderr });
    });
  });
  return { proc, exited };
}

/* ------------------------------------------------------- helpers */

class Queue {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.done = false;
  }
  push(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else this.items.push(x);
  }
  end() {
    this.done = true;
    for (const w of this.waiters.splice(0)) w(null);
  }
  /* The next item, or null at the end or after @ms. */
  next(ms = 5000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.done) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, ms);
      const w = (x) => {
        clearTimeout(t);
        resolve(x);
      };
      this.waiters.push(w);
    });
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/* A server frame; o.fin, o.rsv (3 bits), o.mask, o.form (7|16|64),
   o.len64 (BigInt written as the 64-bit length). */
function frame(opcode, payload = Buffer.alloc(0), o = {}) {
  payload = Buffer.from(payload);
  const fin = o.fin === undefined ? true : o.fin;
  const b0 = (fin ? 0x80 : 0) | ((o.rsv || 0) << 4) | opcode;
  const len = payload.length;
  const form = o.form || (len < 126 ? 7 : len < 65536 ? 16 : 64);
  const m = o.mask ? 0x80 : 0;
  let hdr;
  if (form === 7) {
    hdr = Buffer.from([b0, m | len]);
  } else if (form === 16) {
    hdr = Buffer.alloc(4);
    hdr[0] = b0;
    hdr[1] = m | 126;
    hdr.writeUInt16BE(len, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[0] = b0;
    hdr[1] = m | 127;
    hdr.writeBigUInt64BE(o.len64 !== undefined ? o.len64 : BigInt(len), 2);
  }
  if (!o.mask) return Buffer.concat([hdr, payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([hdr, key, body]);
}

function closePayload(code, reason = '') {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, r]);
}

const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/* Deterministic payloads of a given size. */
function textOf(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x61 + (i % 26);
  return b;
}
function binOf(n, seed = 7) {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/* All mask keys seen, in order, per connection (checked at the end). */
const maskLog = [];
const keyLog = [];

/*
 * Parses what the client sends on one upgraded connection: frames go to
 * `frames` (a Queue), and rule breaches (unmasked frames, repeated or
 * zero keys, frames after the client's close) to `problems`.
 */
class Conn {
  constructor(socket, head, label) {
    this.socket = socket;
    this.label = label;
    this.chunks = [];
    this.total = 0;
    this.bytes = 0;
    this.frames = new Queue();
    this.all = [];
    this.problems = [];
    this.closeSeen = false;
    this.ended = false;
    this.lastKey = null;
    this.endWaiters = [];
    socket.on('data', (d) => this.push(d));
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    socket.on('error', () => {});
    if (head && head.length) this.push(head);
  }
  finish() {
    if (this.ended) return;
    this.ended = true;
    this.frames.end();
    for (const w of this.endWaiters.splice(0)) w(true);
  }
  /* Resolves true when the client ends the connection, false after @ms. */
  waitEnd(ms) {
    if (this.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.endWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }
  take(n) {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.total -= n;
    return all.subarray(0, n);
  }
  peek(n) {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }
  push(d) {
    this.bytes += d.length;
    this.chunks.push(d);
    this.total += d.length;
    for (;;) {
      if (this.total < 2) return;
      const h = this.peek(Math.min(this.total, 14));
      const masked = (h[1] & 0x80) !== 0;
      let len = h[1] & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (this.total < 4) return;
        len = h.readUInt16BE(2);
        hl = 4;
      } else if (len === 127) {
        if (this.total < 10) return;
        len = Number(h.readBigUInt64BE(2));
        hl = 10;
      }
      if (masked) hl += 4;
      if (this.total < hl + len) return;
      const raw = this.take(hl + len);
      const key = masked ? Buffer.from(raw.subarray(hl - 4, hl)) : null;
      const payload = Buffer.from(raw.subarray(hl));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      const f = {
        fin: (raw[0] & 0x80) !== 0,
        rsv: (raw[0] >> 4) & 7,
        op: raw[0] & 0x0f,
        masked,
        key,
        payload,
      };
      this.check(f);
      this.all.push(f);
      this.frames.push(f);
    }
  }
  check(f) {
    const p = this.problems;
    if (!f.masked) p.push(`client frame (opcode ${f.op}) not masked`);
    else {
      const k = f.key.toString('hex');
      if (k === '00000000') p.push('all-zero mask key');
      if (k === this.lastKey) p.push('mask key repeated in consecutive frames');
      this.lastKey = k;
      maskLog.push(k);
    }
    if (f.rsv) p.push(`client frame with RSV bits ${f.rsv}`);
    if (!f.fin) p.push('client sent a fragment (echoes must be whole frames)');
    if (this.closeSeen) p.push(`frame (opcode ${f.op}) after the client's close frame`);
    if (f.op === OP.close) this.closeSeen = true;
  }
  send(buf) {
    if (!this.socket.destroyed) this.socket.write(buf);
  }
  end() {
    if (!this.socket.destroyed) this.socket.end();
  }
}

/* Problems with a client's upgrade request (RFC 6455 4.1). */
function checkRequest(req) {
  const p = [];
  const h = req.headers;
  if (req.method !== 'GET') p.push(`method ${req.method}`);
  if (req.httpVersion !== '1.1') p.push(`HTTP/${req.httpVersion}`);
  if (!h.host) p.push('no Host header');
  if (!/(^|,)\s*websocket\s*(,|$)/i.test(h.upgrade || '')) p.push(`Upgrade: ${h.upgrade}`);
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(h.connection || '')) p.push(`Connection: ${h.connection}`);
  if (h['sec-websocket-version'] !== '13') p.push(`Sec-WebSocket-Version: ${h['sec-websocket-version']}`);
  const key = h['sec-websocket-key'] || '';
  const raw = Buffer.from(key, 'base64');
  if (raw.length !== 16 || raw.toString('base64') !== key) p.push(`Sec-WebSocket-Key: '${key}'`);
  else keyLog.push(key);
  // The client offers permessage-deflate (which this server declines, so
  // the frames judged here are plain); anything else is not expected.
  const ext = h['sec-websocket-extensions'];
  if (ext && !/^permessage-deflate(\s*;\s*[a-z_]+(=\d+)?)*$/.test(ext)) p.push(`offered extensions ${ext}`);
  return p;
}

/* ------------------------------------------------------ the server */

let current = null;
const server = http.createServer((req, res) => {
  res.writeHead(400);
  res.end();
});
server.on('upgrade', (req, socket, head) => {
  if (!current || current.upgrade) {
    socket.destroy();
    return;
  }
  current.onUpgrade(req, socket, head);
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * MiB });

class Ctx {
  constructor(name) {
    this.name = name;
    this.upgrade = null;
    this.upgradeQ = new Queue();
    this.failures = [];
    this.sockets = [];
  }
  onUpgrade(req, socket, head) {
    this.sockets.push(socket);
    const conn = new Conn(socket, head, this.name);
    this.upgrade = { req, socket, head, conn, problems: checkRequest(req) };
    this.upgradeQ.push(this.upgrade);
  }
  fail(msg) {
    this.failures.push(msg);
  }
  expect(cond, msg) {
    if (!cond) this.fail(msg);
    return cond;
  }
  /* Waits for the client's upgrade request. */
  async request(ms = 5000) {
    const u = await this.upgradeQ.next(ms);
    if (!u) throw new Error('the client did not connect');
    return u;
  }
  /* Accepts with a correct raw 101 answer (plus @extra bytes). */
  async rawOpen(extra = Buffer.alloc(0)) {
    const u = await this.request();
    u.socket.write(Buffer.concat([Buffer.from(resp101(u)), extra]));
    return u.conn;
  }
  /* Accepts through npm ws; messages arrive in ws.msgs (Queue). */
  async wsOpen() {
    const u = await this.request();
    return new Promise((resolve) => {
      wss.handleUpgrade(u.req, u.socket, u.head, (ws) => {
        ws.msgs = new Queue();
        ws.pongs = new Queue();
        ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
        ws.on('message', (data, isBinary) => ws.msgs.push({ data, isBinary }));
        ws.on('pong', (d) => ws.pongs.push(d));
        ws.on('error', () => {});
        resolve(ws);
      });
    });
  }
}

/* --------------------------------------------------- judging helpers */

function same(a, b) {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

function show(b) {
  b = Buffer.from(b);
  const s = b.subarray(0, 16).toString('hex');
  return `${b.length} bytes ${s}${b.length > 16 ? '...' : ''}`;
}

/* Expects the client's next frame to be @op with @payload. */
async function expectFrame(ctx, conn, op, payload, ms = 5000) {
  const f = await conn.frames.next(ms);
  if (!f) return ctx.fail(`expected opcode ${op}, got nothing`);
  if (f.op !== op) return ctx.fail(`expected opcode ${op}, got ${f.op} (${show(f.payload)})`);
  if (!same(f.payload, payload)) ctx.fail(`opcode ${op}: expected ${show(payload)}, got ${show(f.payload)}`);
  return f;
}

/* Expects a close frame from the client with @code (null: empty). */
async function expectClose(ctx, conn, code, ms = 5000) {
  const f = await conn.frames.next(ms);
  if (!f) return ctx.fail(`expected close ${code}, got nothing`), null;
  if (f.op !== OP.close) return ctx.fail(`expected close ${code}, got opcode ${f.op} (${show(f.payload)})`), null;
  if (code === null) {
    ctx.expect(f.payload.length === 0, `expected an empty close, got ${show(f.payload)}`);
  } else if (f.payload.length < 2) {
    ctx.fail(`expected close ${code}, got ${show(f.payload)}`);
  } else {
    ctx.expect(f.payload.readUInt16BE(0) === code, `expected close ${code}, got ${f.payload.readUInt16BE(0)}`);
  }
  return f;
}

/* Waits for the client to exit; checks the status. */
async function expectExit(ctx, status, ms = 5000) {
  const r = await Promise.race([ctx.exited, sleep(ms).then(() => null)]);
  if (!r) return ctx.fail(`client still running ${ms} ms after the end`);
  if (r.code !== status) ctx.fail(`exit status ${r.code}${r.signal ? ' ' + r.signal : ''}, expected ${status}`);
  return r;
}

/* Server-initiated close: sends close @code, expects it echoed, ends TCP,
   expects exit 0. */
async function closeClean(ctx, conn, code = 1000) {
  conn.send(frame(OP.close, closePayload(code, 'bye')));
  const f = await expectClose(ctx, conn, code);
  if (f && f.payload.length > 2)
    ctx.expect(f.payload.subarray(2).toString() === 'bye', `close reason '${f.payload.subarray(2)}'`);
  conn.end();
  await expectExit(ctx, 0);
}

/* The client must fail the connection with close @code and exit 1. */
async function expectFail(ctx, conn, code, ms = 3000) {
  const f = await expectClose(ctx, conn, code, ms);
  if (f) conn.send(frame(OP.close, f.payload.subarray(0, 2)));
  conn.end();
  await expectExit(ctx, 1);
}

/* ------------------------------------------------------------ cases */

const cases = [];
function add(group, name, opts, script) {
  if (typeof opts === 'function') {
    script = opts;
    opts = {};
  }
  cases.push({ group, name, script, ...opts });
}

/* -- opening handshake accepted */

add('handshake', 'request is a valid version-13 upgrade', { ref: true }, async (ctx) => {
  const u = await ctx.request();
  const port = server.address().port;
  ctx.expect(u.req.url === '/hs/request?x=1', `request target ${u.req.url}`);
  ctx.expect(u.req.headers.host === `127.0.0.1:${port}`, `Host: ${u.req.headers.host}`);
  u.socket.write(resp101(u));
  await closeClean(ctx, u.conn);
});
cases[cases.length - 1].path = '/hs/request?x=1#frag';

add('handshake', 'frames in the same write as the 101 answer', { ref: true }, async (ctx) => {
  const conn = await ctx.rawOpen(Buffer.concat([frame(OP.text, 'early'), frame(OP.binary, [1, 2, 3])]));
  await expectFrame(ctx, conn, OP.text, 'early');
  await expectFrame(ctx, conn, OP.binary, [1, 2, 3]);
  await closeClean(ctx, conn);
});

add('handshake', 'header names and values in other cases, extra headers', { ref: true }, async (ctx) => {
  const u = await ctx.request();
  u.socket.write(
    'HTTP/1.1 101 Web Socket Protocol Handshake\r\nServer: test\r\nupgrade: WebSocket\r\n' +
      'CONNECTION: keep-alive, Upgrade\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n' +
      `sec-websocket-accept:${acceptFor(u.req.headers['sec-websocket-key'])}  \r\n\r\n`
  );
  await closeClean(ctx, u.conn);
});

add('handshake', 'response written one byte at a time', { ref: true }, async (ctx) => {
  const u = await ctx.request();
  const resp = Buffer.from(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptFor(u.req.headers['sec-websocket-key'])}\r\n\r\n`
  );
  u.socket.setNoDelay(true);
  for (let i = 0; i < resp.length; i++) {
    u.socket.write(resp.subarray(i, i + 1));
    if (i % 8 === 0) await sleep(1);
  }
  await closeClean(ctx, u.conn);
});

add('handshake', 'keys differ between connections', async (ctx) => {
  /* This case's key against every key seen so far. */
  const u = await ctx.request();
  const key = u.req.headers['sec-websocket-key'];
  ctx.expect(keyLog.filter((k) => k === key).length === 1, `key ${key} was used before`);
  u.socket.write(resp101(u));
  await closeClean(ctx, u.conn);
});

/* -- opening handshake refused: exit 3, no frame sent */

function badHandshake(name, respond, opts = {}) {
  add('bad-handshake', name, opts, async (ctx) => {
    const u = await ctx.request();
    await respond(u);
    await expectExit(ctx, 3, opts.exitWithin || 3000);
    ctx.expect(u.conn.bytes === 0, `client sent ${u.conn.bytes} bytes after a refused handshake`);
    u.socket.destroy();
  });
}
function resp101(u, { status = 'HTTP/1.1 101 Switching Protocols', upgrade = 'websocket', connection = 'Upgrade', accept, extra = '' } = {}) {
  const a = accept === undefined ? acceptFor(u.req.headers['sec-websocket-key']) : accept;
  let s = status + '\r\n';
  if (upgrade !== null) s += `Upgrade: ${upgrade}\r\n`;
  if (connection !== null) s += `Connection: ${connection}\r\n`;
  if (a !== null) s += `Sec-WebSocket-Accept: ${a}\r\n`;
  return s + extra + '\r\n';
}
badHandshake('wrong Sec-WebSocket-Accept', (u) => u.socket.write(resp101(u, { accept: acceptFor('dGhlIHNhbXBsZSBub25jZQ==') })));
badHandshake('Sec-WebSocket-Accept of the key itself', (u) => u.socket.write(resp101(u, { accept: u.req.headers['sec-websocket-key'] })));
badHandshake('missing Sec-WebSocket-Accept', (u) => u.socket.write(resp101(u, { accept: null })));
badHandshake('Sec-WebSocket-Accept twice', (u) => u.socket.write(resp101(u, { extra: `Sec-WebSocket-Accept: ${acceptFor('x')}\r\n` })));
badHandshake('missing Upgrade', (u) => u.socket.write(resp101(u, { upgrade: null })));
badHandshake('Upgrade: h2c', (u) => u.socket.write(resp101(u, { upgrade: 'h2c' })));
badHandshake('missing Connection', (u) => u.socket.write(resp101(u, { connection: null })));
badHandshake('Connection: keep-alive', (u) => u.socket.write(resp101(u, { connection: 'keep-alive' })));
badHandshake('status 200', (u) => u.socket.write(resp101(u, { status: 'HTTP/1.1 200 OK' })));
badHandshake('status 403 with a body', (u) =>
  u.socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden')
);
badHandshake('HTTP/1.0 101', (u) => u.socket.write(resp101(u, { status: 'HTTP/1.0 101 Switching Protocols' })));
// The client offers permessage-deflate (examples/client.c): anything else,
// or permessage-deflate with a parameter it did not offer, fails.
badHandshake('unrequested extension', (u) => u.socket.write(resp101(u, { extra: 'Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n' })));
badHandshake('permessage-deflate with an unknown parameter', (u) =>
  u.socket.write(resp101(u, { extra: 'Sec-WebSocket-Extensions: permessage-deflate; foo\r\n' })));
badHandshake('permessage-deflate twice', (u) =>
  u.socket.write(resp101(u, { extra: 'Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n' })));
badHandshake('permessage-deflate with client_max_window_bits=7', (u) =>
  u.socket.write(resp101(u, { extra: 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7\r\n' })));
badHandshake('unrequested subprotocol', (u) => u.socket.write(resp101(u, { extra: 'Sec-WebSocket-Protocol: chat\r\n' })));
badHandshake('connection closed before any answer', (u) => u.socket.end());
badHandshake('header block over 16 KiB', (u) => {
  u.socket.write('HTTP/1.1 101 Switching Protocols\r\n');
  for (let i = 0; i < 400; i++) u.socket.write(`X-Filler-${i}: ${'a'.repeat(60)}\r\n`);
});
badHandshake('no answer (handshake timeout)', async () => {}, { exitWithin: 8000 });

add('bad-handshake', 'connection refused', { noServer: true }, async (ctx) => {
  await expectExit(ctx, 3);
});

/* -- command line */

function usageCase(name, args, status, check) {
  add('usage', name, { args, noServer: true, rawArgs: true }, async (ctx) => {
    const r = await expectExit(ctx, status);
    if (r && check) check(ctx, r);
  });
}
usageCase('-h prints usage, exit 0', ['-h'], 0, (ctx, r) => ctx.expect(/Usage: client/.test(r.stdout), 'no usage on stdout'));
usageCase('no URL: exit 2', [], 2);
usageCase('http:// URL: exit 2', ['http://127.0.0.1:1/'], 2);
usageCase('wss:// URL: exit 2', ['wss://127.0.0.1:1/'], 2);
usageCase('port 99999: exit 2', ['ws://127.0.0.1:99999/'], 2);
usageCase('unknown option: exit 2', ['-x', 'ws://127.0.0.1:1/'], 2);

/* -- echo through npm ws (message level) */

function wsEcho(name, msgs, opts = {}) {
  add('echo', name, { ref: true, timeout: opts.timeout }, async (ctx) => {
    const ws = await ctx.wsOpen();
    for (const m of msgs) {
      ws.send(m.data, { binary: m.binary });
      const got = await ws.msgs.next(opts.wait || 5000);
      if (!got) {
        ctx.fail(`no echo of ${m.binary ? 'binary' : 'text'} ${show(m.data)}`);
        break;
      }
      ctx.expect(got.isBinary === m.binary, `echo type ${got.isBinary ? 'binary' : 'text'}`);
      ctx.expect(same(got.data, m.data), `echo ${show(got.data)} for ${show(m.data)}`);
    }
    ws.close(1000, 'done');
    const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
    if (ctx.expect(c, 'no close from the client')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
    await expectExit(ctx, 0);
  });
}
for (const n of [0, 1, 125, 126, 127, 65535, 65536, 65537, MiB]) {
  wsEcho(`text ${n} bytes`, [{ data: textOf(n), binary: false }]);
  wsEcho(`binary ${n} bytes`, [{ data: binOf(n, n), binary: true }]);
}
wsEcho('binary 16 MiB', [{ data: binOf(16 * MiB), binary: true }], { timeout: 30000, wait: 20000 });
wsEcho('text with 2-, 3- and 4-byte characters', [{ data: Buffer.from('κόσμε € 𝄞 ok'), binary: false }]);
wsEcho(
  '100 messages in order',
  Array.from({ length: 100 }, (_, i) => ({ data: i % 2 ? binOf(i, i) : Buffer.from(`message ${i}`), binary: i % 2 === 1 }))
);
add('echo', 'ping from ws answered with the same payload', { ref: true }, async (ctx) => {
  const ws = await ctx.wsOpen();
  for (const p of [Buffer.alloc(0), Buffer.from('hello'), binOf(125)]) {
    ws.ping(p);
    const got = await ws.pongs.next();
    if (ctx.expect(got, `no pong for ${show(p)}`)) ctx.expect(same(got, p), `pong ${show(got)} for ${show(p)}`);
  }
  ws.close(1000);
  const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
  if (ctx.expect(c, 'no close from the client')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
  await expectExit(ctx, 0);
});

/* -- frames written raw: fragments, control frames, batching */

function raw(group, name, script, opts = {}) {
  add(group, name, { ref: true, ...opts }, async (ctx) => {
    const conn = await ctx.rawOpen();
    await script(ctx, conn);
  });
}
raw('frames', 'empty text frame', async (ctx, c) => {
  c.send(frame(OP.text));
  await expectFrame(ctx, c, OP.text, '');
  await closeClean(ctx, c);
});
raw('frames', 'empty binary frame', async (ctx, c) => {
  c.send(frame(OP.binary));
  await expectFrame(ctx, c, OP.binary, '');
  await closeClean(ctx, c);
});
raw('frames', 'text in 2 fragments', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.text, 'Hello, ', { fin: false }), frame(OP.cont, 'world')]));
  await expectFrame(ctx, c, OP.text, 'Hello, world');
  await closeClean(ctx, c);
});
raw('frames', 'text in 4 fragments, empty first and middle', async (ctx, c) => {
  c.send(
    Buffer.concat([
      frame(OP.text, '', { fin: false }),
      frame(OP.cont, 'ab', { fin: false }),
      frame(OP.cont, '', { fin: false }),
      frame(OP.cont, 'cd'),
    ])
  );
  await expectFrame(ctx, c, OP.text, 'abcd');
  await closeClean(ctx, c);
});
raw('frames', 'text fragments cutting a 4-byte character', async (ctx, c) => {
  const t = Buffer.from('a𝄞b');
  c.send(Buffer.concat([frame(OP.text, t.subarray(0, 2), { fin: false }), frame(OP.cont, t.subarray(2, 4), { fin: false }), frame(OP.cont, t.subarray(4))]));
  await expectFrame(ctx, c, OP.text, t);
  await closeClean(ctx, c);
});
raw('frames', 'binary in 3 fragments (16- and 64-bit lengths)', async (ctx, c) => {
  const a = binOf(300, 1);
  const b = binOf(70000, 2);
  c.send(Buffer.concat([frame(OP.binary, a, { fin: false }), frame(OP.cont, b, { fin: false }), frame(OP.cont, [9])]));
  await expectFrame(ctx, c, OP.binary, Buffer.concat([a, b, Buffer.from([9])]));
  await closeClean(ctx, c);
});
raw('frames', 'ping between fragments: pong first, then the whole message', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.text, 'frag', { fin: false }), frame(OP.ping, 'mid'), frame(OP.cont, 'ment')]));
  await expectFrame(ctx, c, OP.pong, 'mid');
  await expectFrame(ctx, c, OP.text, 'fragment');
  await closeClean(ctx, c);
});
raw('frames', 'pings and pong between binary fragments', async (ctx, c) => {
  c.send(
    Buffer.concat([
      frame(OP.binary, [1], { fin: false }),
      frame(OP.ping, 'p1'),
      frame(OP.cont, [2], { fin: false }),
      frame(OP.pong, 'unsolicited'),
      frame(OP.ping, 'p2'),
      frame(OP.cont, [3]),
    ])
  );
  await expectFrame(ctx, c, OP.pong, 'p1');
  await expectFrame(ctx, c, OP.pong, 'p2');
  await expectFrame(ctx, c, OP.binary, [1, 2, 3]);
  await closeClean(ctx, c);
});
raw('frames', 'fragments sent in separate writes', async (ctx, c) => {
  c.send(frame(OP.text, 'one ', { fin: false }));
  await sleep(30);
  c.send(frame(OP.cont, 'two ', { fin: false }));
  await sleep(30);
  c.send(frame(OP.cont, 'three'));
  await expectFrame(ctx, c, OP.text, 'one two three');
  await closeClean(ctx, c);
});
for (const [n, p] of [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0])],
  ['125 bytes, every byte value', binOf(125, 3)],
]) {
  raw('control', `ping ${n} answered with the same payload`, async (ctx, c) => {
    c.send(frame(OP.ping, p));
    await expectFrame(ctx, c, OP.pong, p);
    await closeClean(ctx, c);
  });
}
raw('control', 'unsolicited pongs are not answered', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.pong), frame(OP.pong, 'x'.repeat(125)), frame(OP.text, 'after')]));
  await expectFrame(ctx, c, OP.text, 'after');
  await closeClean(ctx, c);
});
raw('control', 'ping, text, ping, binary in one write: answers in order', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.ping, '1'), frame(OP.text, 't'), frame(OP.ping, '2'), frame(OP.binary, [0xff])]));
  await expectFrame(ctx, c, OP.pong, '1');
  await expectFrame(ctx, c, OP.text, 't');
  await expectFrame(ctx, c, OP.pong, '2');
  await expectFrame(ctx, c, OP.binary, [0xff]);
  await closeClean(ctx, c);
});
raw('frames', '50 frames in one write', async (ctx, c) => {
  const msgs = Array.from({ length: 50 }, (_, i) => `m${i}`);
  c.send(Buffer.concat(msgs.map((m) => frame(OP.text, m))));
  for (const m of msgs) await expectFrame(ctx, c, OP.text, m);
  await closeClean(ctx, c);
});
raw('frames', 'a frame written one byte at a time', async (ctx, c) => {
  c.socket.setNoDelay(true);
  const f = frame(OP.binary, binOf(200, 5));
  for (let i = 0; i < f.length; i++) {
    c.send(f.subarray(i, i + 1));
    if (i % 16 === 0) await sleep(1);
  }
  await expectFrame(ctx, c, OP.binary, binOf(200, 5));
  await closeClean(ctx, c);
});
raw('frames', 'multi-byte text written one byte at a time', async (ctx, c) => {
  c.socket.setNoDelay(true);
  const t = Buffer.from('é€𝄞'.repeat(10));
  const f = frame(OP.text, t);
  for (let i = 0; i < f.length; i++) {
    c.send(f.subarray(i, i + 1));
    if (i % 4 === 0) await sleep(1);
  }
  await expectFrame(ctx, c, OP.text, t);
  await closeClean(ctx, c);
});
raw('close', 'close in the middle of a fragmented message', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.text, 'never ', { fin: false }), frame(OP.close, closePayload(1001))]));
  await expectClose(ctx, c, 1001);
  c.end();
  await expectExit(ctx, 0);
});
raw('frames', 'text frame with 64-bit length form of 70000 bytes', async (ctx, c) => {
  c.send(frame(OP.text, textOf(70000)));
  await expectFrame(ctx, c, OP.text, textOf(70000));
  await closeClean(ctx, c);
});

/* -- frames that break RFC 6455: the client fails with 1002 */

function proto(name, bytes, code = 1002, opts = {}) {
  add(opts.group || 'protocol-error', name, { ref: !opts.noRef }, async (ctx) => {
    const conn = await ctx.rawOpen();
    conn.send(bytes);
    if (opts.expectFirst) for (const [op, p] of opts.expectFirst) await expectFrame(ctx, conn, op, p);
    await expectFail(ctx, conn, code);
  });
}
proto('RSV1 on a text frame', frame(OP.text, 'x', { rsv: 4 }));
proto('RSV2 on a text frame', frame(OP.text, 'x', { rsv: 2 }));
proto('RSV3 on a binary frame', frame(OP.binary, 'x', { rsv: 1 }));
proto('RSV1 on a ping', frame(OP.ping, 'x', { rsv: 4 }));
for (const op of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) proto(`reserved opcode 0x${op.toString(16)}`, frame(op, 'x'));
proto('masked text frame from the server', frame(OP.text, 'masked', { mask: true }));
proto('masked ping from the server', frame(OP.ping, 'm', { mask: true }));
proto('masked empty close from the server', frame(OP.close, '', { mask: true }));
proto('continuation without a message', frame(OP.cont, 'orphan'));
proto('text frame while a text message is open', Buffer.concat([frame(OP.text, 'a', { fin: false }), frame(OP.text, 'b')]));
proto('binary frame while a binary message is open', Buffer.concat([frame(OP.binary, 'a', { fin: false }), frame(OP.binary, 'b')]));
proto('fragmented ping', Buffer.concat([frame(OP.ping, 'a', { fin: false }), frame(OP.cont, 'b')]));
proto('fragmented pong', Buffer.concat([frame(OP.pong, 'a', { fin: false }), frame(OP.cont, 'b')]));
proto('fragmented close', Buffer.concat([frame(OP.close, closePayload(1000), { fin: false }), frame(OP.cont, '')]));
proto('ping of 126 bytes', frame(OP.ping, binOf(126)));
proto('pong of 126 bytes', frame(OP.pong, binOf(126)));
proto('close of 126 bytes', frame(OP.close, closePayload(1000, 'r'.repeat(124))));
/* npm ws accepts lengths in a longer form than needed, and fails a
   length above 2^53 with 1009: no reference run for these three. */
proto('16-bit length form for 5 bytes', frame(OP.text, 'hello', { form: 16 }), 1002, { noRef: true });
proto('64-bit length form for 200 bytes', frame(OP.binary, binOf(200), { form: 64 }), 1002, { noRef: true });
proto('64-bit length with the top bit set', frame(OP.binary, 'x', { form: 64, len64: 0x8000000000000001n }), 1002, {
  noRef: true,
});
proto('error after valid traffic in the same write', Buffer.concat([frame(OP.text, 'ok'), frame(OP.text, 'x', { rsv: 4 })]), 1002, {
  expectFirst: [[OP.text, 'ok']],
});

/* The client's limit is 64 MiB (MAX_MESSAGE): refused with 1009 as soon
   as a header announces more, before any payload arrives. */
proto('frame announcing 64 MiB + 1', frame(OP.binary, '', { form: 64, len64: BigInt(64 * MiB + 1) }).subarray(0, 10), 1009, {
  group: 'limits',
});
proto(
  'fragments adding up to 64 MiB + 1',
  Buffer.concat([frame(OP.binary, 'x', { fin: false }), frame(OP.cont, '', { form: 64, len64: BigInt(64 * MiB) }).subarray(0, 10)]),
  1009,
  { group: 'limits' }
);
proto('frame announcing 2^63 - 1 bytes', frame(OP.text, '', { form: 64, len64: 0x7fffffffffffffffn }).subarray(0, 10), 1009, {
  group: 'limits',
});

/* -- invalid UTF-8: the client fails with 1007, as soon as it can tell */

const utf8Bad = [
  ['byte 0xFF', [0x61, 0xff, 0x62]],
  ['lone continuation byte', [0x80]],
  ['overlong 2-byte form of /', [0xc0, 0xaf]],
  ['overlong 3-byte form', [0xe0, 0x80, 0xaf]],
  ['surrogate U+D800', [0xed, 0xa0, 0x80]],
  ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['sequence cut at the end of the message', [0x61, 0xe2, 0x82]],
];
for (const [n, b] of utf8Bad) proto(`invalid UTF-8: ${n}`, frame(OP.text, b), 1007, { group: 'utf8' });
proto(
  'invalid UTF-8 in the second fragment',
  Buffer.concat([frame(OP.text, 'valid', { fin: false }), frame(OP.cont, [0xc3, 0x28])]),
  1007,
  { group: 'utf8' }
);
proto(
  'message ending inside a character across fragments',
  Buffer.concat([frame(OP.text, 'a', { fin: false }), frame(OP.cont, [0xf0, 0x9f], { fin: false }), frame(OP.cont, [0x98])]),
  1007,
  { group: 'utf8' }
);
function failFast(name, bytes) {
  add('utf8', name, {}, async (ctx) => {
    const conn = await ctx.rawOpen();
    const t0 = Date.now();
    conn.send(bytes);
    const f = await expectClose(ctx, conn, 1007, 2000);
    if (f) ctx.expect(Date.now() - t0 < 1000, `close came after ${Date.now() - t0} ms`);
    conn.send(frame(OP.close, closePayload(1007)));
    conn.end();
    await expectExit(ctx, 1);
  });
}
{
  /* A frame that announces 1000 bytes; only the bad start arrives. */
  const f = frame(OP.text, Buffer.concat([Buffer.from('ok'), Buffer.from([0xff]), Buffer.alloc(997, 0x61)]));
  failFast('fail fast: bad byte early in a frame whose rest never comes', f.subarray(0, 4 + 3));
  const g = Buffer.concat([frame(OP.text, 'start', { fin: false }), frame(OP.cont, Buffer.from([0xc0, 0x80]), { fin: false })]);
  failFast('fail fast: bad fragment of a message that never ends', g);
}
raw('utf8', 'valid text: U+0080, U+07FF, U+FFFF, U+10000, U+10FFFF', async (ctx, c) => {
  const t = Buffer.from('\u0080\u07ff\uffff\u{10000}\u{10ffff}');
  c.send(frame(OP.text, t));
  await expectFrame(ctx, c, OP.text, t);
  await closeClean(ctx, c);
});

/* -- closing handshake */

for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
  raw('close', `close ${code} is echoed`, async (ctx, c) => {
    await closeClean(ctx, c, code);
  });
}
raw('close', 'empty close answered with an empty close', async (ctx, c) => {
  c.send(frame(OP.close));
  await expectClose(ctx, c, null);
  c.end();
  await expectExit(ctx, 0);
});
raw('close', 'close with a 123-byte UTF-8 reason', async (ctx, c) => {
  const reason = Buffer.from('é'.repeat(61) + 'x');
  c.send(frame(OP.close, closePayload(4001, reason)));
  const f = await expectClose(ctx, c, 4001);
  if (f && f.payload.length > 2) ctx.expect(same(f.payload.subarray(2), reason), 'reason changed');
  c.end();
  await expectExit(ctx, 0);
});
raw('close', 'close after the echo of a message', async (ctx, c) => {
  c.send(frame(OP.text, 'last'));
  await expectFrame(ctx, c, OP.text, 'last');
  await closeClean(ctx, c);
});
raw('close', 'close and a text frame in one write: only the close answered', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.close, closePayload(1000)), frame(OP.text, 'late'), frame(OP.ping, 'late')]));
  await expectClose(ctx, c, 1000);
  const more = await c.frames.next(300);
  ctx.expect(!more, `frame after the close: opcode ${more && more.op}`);
  c.end();
  await expectExit(ctx, 0);
});
raw('close', 'text, then close in one write: echo, then close', async (ctx, c) => {
  c.send(Buffer.concat([frame(OP.text, 'first'), frame(OP.close, closePayload(1001))]));
  await expectFrame(ctx, c, OP.text, 'first');
  await expectClose(ctx, c, 1001);
  c.end();
  await expectExit(ctx, 0);
});
add('close', 'server keeps TCP open after the closing handshake: bounded wait', {}, async (ctx) => {
  const c = await ctx.rawOpen();
  c.send(frame(OP.close, closePayload(1000)));
  await expectClose(ctx, c, 1000);
  const t0 = Date.now();
  ctx.expect(await c.waitEnd(4000), 'client did not end its side of TCP');
  await expectExit(ctx, 0, 5000);
  ctx.expect(Date.now() - t0 < 4500, `client waited ${Date.now() - t0} ms`);
});
add('close', 'connection dropped without a close frame: exit 1', {}, async (ctx) => {
  const c = await ctx.rawOpen();
  c.send(frame(OP.text, 'x'));
  await expectFrame(ctx, c, OP.text, 'x');
  c.socket.destroy();
  const r = await expectExit(ctx, 1);
  if (r) ctx.expect(/1006/.test(r.stderr), `stderr does not name 1006: ${r.stderr.trim()}`);
});
for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
  proto(`close code ${code} answered with 1002`, frame(OP.close, closePayload(code)), 1002, { group: 'close' });
}
proto('close payload of 1 byte answered with 1002', frame(OP.close, [0x03]), 1002, { group: 'close' });
proto('close reason not UTF-8 answered with 1007', frame(OP.close, closePayload(1000, Buffer.from([0x61, 0xff]))), 1007, {
  group: 'close',
});

/* -- interactive mode (stdin lines, stdout messages) */

function interactive(name, script, opts = {}) {
  add('stdin', name, { args: [], stdin: 'pipe', ...opts }, script);
}
interactive('lines become text messages; EOF closes with 1000', async (ctx) => {
  const ws = await ctx.wsOpen();
  const lines = ['first', '', 'wörld 𝄞', 'x'.repeat(70000), 'crlf'];
  ctx.proc.stdin.write(lines.slice(0, 4).join('\n') + '\ncrlf\r\nno newline at the end');
  ctx.proc.stdin.end();
  for (const l of [...lines, 'no newline at the end']) {
    const m = await ws.msgs.next();
    if (!ctx.expect(m, `line '${l.slice(0, 20)}' not received`)) break;
    ctx.expect(!m.isBinary && m.data.toString() === l, `got ${m.isBinary ? 'binary' : 'text'} '${m.data.toString().slice(0, 40)}'`);
  }
  const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
  if (ctx.expect(c, 'no close from the client')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
  const r = await expectExit(ctx, 0);
  if (r) ctx.expect(r.stdout === '', `stdout: ${r.stdout}`);
});
interactive('a line that is not UTF-8 is skipped', async (ctx) => {
  const ws = await ctx.wsOpen();
  ctx.proc.stdin.end(Buffer.concat([Buffer.from('before\n'), Buffer.from([0x62, 0xff, 0x0a]), Buffer.from('after\n')]));
  for (const l of ['before', 'after']) {
    const m = await ws.msgs.next();
    if (ctx.expect(m, `line ${l} not received`)) ctx.expect(m.data.toString() === l, `got '${m.data}'`);
  }
  const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
  if (ctx.expect(c, 'no close')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
  const r = await expectExit(ctx, 0);
  if (r) ctx.expect(/line 2/.test(r.stderr), `stderr does not report line 2: ${r.stderr.trim()}`);
});
interactive('messages printed one per line; server close reported', async (ctx) => {
  const ws = await ctx.wsOpen();
  ws.send('hello');
  ws.send('');
  ws.send(Buffer.from([0, 1, 255]));
  ws.send(Buffer.alloc(0));
  ws.send(binOf(100, 9));
  ws.send('wörld');
  ws.close(1000, 'bye');
  const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
  if (ctx.expect(c, 'no close')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
  const r = await expectExit(ctx, 0);
  if (!r) return;
  const want =
    'hello\n\n[binary 3 bytes] 0001ff\n[binary 0 bytes]\n' +
    `[binary 100 bytes] ${binOf(100, 9).subarray(0, 64).toString('hex')}...\nwörld\n`;
  ctx.expect(r.stdout === want, `stdout ${JSON.stringify(r.stdout)}`);
  ctx.expect(/1000 bye/.test(r.stderr), `stderr does not report '1000 bye': ${r.stderr.trim()}`);
  ctx.proc.stdin.end();
});
interactive('full duplex: lines and messages interleaved, ping answered', async (ctx) => {
  const ws = await ctx.wsOpen();
  const outLines = [];
  let buf = '';
  ctx.proc.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop();
    outLines.push(...parts);
  });
  for (let i = 0; i < 5; i++) {
    ctx.proc.stdin.write(`up ${i}\n`);
    const m = await ws.msgs.next();
    if (!ctx.expect(m && m.data.toString() === `up ${i}`, `line ${i}: ${m && m.data}`)) break;
    ws.send(`down ${i}`);
    ws.ping(`p${i}`);
    const p = await ws.pongs.next();
    ctx.expect(p && p.toString() === `p${i}`, `pong ${p}`);
    for (let t = 0; t < 100 && outLines.length <= i; t++) await sleep(10);
    ctx.expect(outLines[i] === `down ${i}`, `stdout line ${i}: ${outLines[i]}`);
  }
  ctx.proc.stdin.end();
  const c = await Promise.race([ws.closed, sleep(5000).then(() => null)]);
  if (ctx.expect(c, 'no close')) ctx.expect(c.code === 1000, `client closed with ${c.code}`);
  await expectExit(ctx, 0);
});
add('stdin', 'no answer to our close: bounded wait, exit 1', { args: [], stdin: 'pipe' }, async (ctx) => {
  const c = await ctx.rawOpen();
  ctx.proc.stdin.end('only line\n');
  await expectFrame(ctx, c, OP.text, 'only line');
  await expectClose(ctx, c, 1000);
  const t0 = Date.now();
  await expectExit(ctx, 1, 6000);
  ctx.expect(Date.now() - t0 < 5000, `client waited ${Date.now() - t0} ms`);
});
add('stdin', 'server close while stdin is open: exit 0', { args: [], stdin: 'pipe' }, async (ctx) => {
  const c = await ctx.rawOpen();
  ctx.proc.stdin.write('line\n');
  await expectFrame(ctx, c, OP.text, 'line');
  await closeClean(ctx, c, 1001);
  ctx.proc.stdin.end();
});

/* ------------------------------------------------------------ runner */

function runProc(cmd, args, stdin) {
  const proc = spawn(cmd, args, { stdio: [stdin === 'pipe' ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  if (proc.stdin) proc.stdin.on('error', () => {});
  const exited = new Promise((resolve) => {
    proc.on('error', (e) => resolve({ code: -1, signal: null, stdout, stderr: String(e) }));
    proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { proc, exited };
}

async function runCase(c, n, clientBin, ref) {
  const ctx = new Ctx(c.name);
  const port = c.noServer ? refusedPort : server.address().port;
  const url = `ws://127.0.0.1:${port}${c.path || `/case/${n}`}`;
  current = c.noServer ? null : ctx;
  const t0 = Date.now();
  const args = c.rawArgs ? c.args : [...(c.args || ['-e']), url];
  /* ws refuses URLs with a fragment; our client drops it. */
  const { proc, exited } = ref ? refEcho(url.replace(/#.*/, '')) : runProc(clientBin, args, c.stdin);
  ctx.proc = proc;
  ctx.exited = exited;
  let timer;
  const limit = c.timeout || CASE_TIMEOUT;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), limit);
  });
  const outcome = await Promise.race([
    c.script(ctx).then(
      () => 'done',
      (e) => {
        ctx.fail(`harness: ${e.message}`);
        return 'done';
      }
    ),
    timeout,
  ]);
  clearTimeout(timer);
  if (outcome === 'timeout') ctx.fail(`case timed out after ${limit} ms`);
  if (proc.exitCode === null && proc.signalCode === null) {
    if (outcome !== 'timeout') ctx.fail('client still running after the case');
    proc.kill('SIGKILL');
  }
  const r = await Promise.race([exited, sleep(5000).then(() => null)]);
  if (!r) ctx.fail('the client did not go away after SIGKILL');
  current = null;
  for (const s of ctx.sockets) s.destroy();
  if (ctx.upgrade) {
    for (const p of ctx.upgrade.problems) ctx.fail(`request: ${p}`);
    for (const p of ctx.upgrade.conn.problems) ctx.fail(p);
  }
  const ok = ctx.failures.length === 0;
  const label = `${ref ? 'ref ' : ''}${c.group}: ${c.name}`;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${label} (${Date.now() - t0} ms)`);
  if (!ok) {
    for (const f of ctx.failures.slice(0, 6)) console.log(`     - ${f}`);
    if (r && r.stderr.trim()) console.log(`     client stderr: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return ok;
}

let refusedPort = 1;

const only = process.env.CLIENT_SUITE_ONLY ? new RegExp(process.env.CLIENT_SUITE_ONLY) : null;
if (only) cases.splice(0, cases.length, ...cases.filter((c) => only.test(`${c.group}: ${c.name}`)));

async function main() {
  const builddir = process.argv[2];
  if (!builddir) {
    console.log('usage: client-suite.js BUILDDIR');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const clientBin = path.resolve(builddir, 'examples', 'client');
  /* A port with nothing behind it: bound once, then closed. */
  refusedPort = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  let passed = 0;
  let failed = 0;
  const t0 = Date.now();
  try {
    console.log('# reference: npm ws as the echo client');
    let refFailed = 0;
    for (const [i, c] of cases.entries()) {
      if (!c.ref || process.env.CLIENT_SUITE_NO_REF) continue;
      if (await runCase(c, i, clientBin, true)) passed++;
      else {
        failed++;
        refFailed++;
      }
    }
    if (refFailed) console.log(`# the harness failed ${refFailed} case(s) with the reference client`);
    console.log(`# examples/client`);
    const mask0 = maskLog.length;
    for (const [i, c] of cases.entries()) {
      if (await runCase(c, i, clientBin, false)) passed++;
      else failed++;
    }
    /* Mask keys over the whole run of our client. */
    const keys = maskLog.slice(mask0);
    const distinct = new Set(keys).size;
    const okMask = keys.length > (only ? 0 : 100) && distinct >= keys.length - 2;
    console.log(`${okMask ? 'PASS' : 'FAIL'} masking: ${keys.length} client frames, ${distinct} distinct mask keys`);
    if (okMask) passed++;
    else failed++;
  } finally {
    server.close();
    for (const c of wss.clients) c.terminate();
  }
  console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`harness error: ${e.stack}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
