'use strict';
// The conformance cases, in groups modelled on the case groups of a
// WebSocket "fuzzing client":
//    1 framing            5 fragmentation       9 big messages
//    2 ping/pong          6 UTF-8 handling     10 miscellaneous
//    3 reserved bits      7 closing handshake  12 permessage-deflate
//    4 reserved opcodes                        13 permessage-deflate offers
// Each case has an id "G.S.N", a description, a run(conn) function that
// writes to the server, and an expectation (see server-judge.js): the exact echoes
// and pongs, then either a close handshake ('close', the close frame echoed
// byte for byte), a failure ('fail', close codes allowed, whether it must
// come before the rest of the input, `fast`), or a dropped connection
// ('drop').  Where the `ws` reference server legitimately does something
// else than our contract demands of examples/echo, the case says so in
// expect.ws / expect.echo, with the reason.

const crypto = require('crypto');
const { OP, frame, closePayload, rng, sleep, Conn } = require('./raw-client');

// How long a fail-fast case holds back the rest of its input.
const FAST_MS = 500;
const MAX = 16 * 1024 * 1024; // both servers' message size limit

const cases = [];

function add (id, desc, run, expect, more) {
  cases.push(Object.assign({ id, group: Number(id.split('.')[0]), desc, run, expect }, more));
}

const M = (opcode, payload) => ({ type: 'message', opcode, payload: Buffer.from(payload) });
const PONG = (payload) => ({ type: 'pong', payload: Buffer.from(payload) });
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const utf8 = (s) => Buffer.from(s, 'utf8');
const FAIL = (codes, more) => Object.assign({ outcome: 'fail', codes }, more);

// Valid UTF-8 of exactly n bytes, mixing 1- to 4-byte characters so that
// chopped writes and fragment cuts land inside characters.
const PIECES = ['a', 'Z', ' ', '0', 'é', 'ß', 'κ', '€', '한', '✓', '𝄞', '😀'];
function textOf (n, seed) {
  if (n > 8192) {
    const block = textOf(4096, seed);
    const whole = Math.floor(n / 4096) * 4096;
    return Buffer.concat([Buffer.alloc(whole).fill(block), textOf(n - whole, seed + 1)]);
  }
  const r = rng(seed || 1);
  const out = [];
  let len = 0;
  while (len < n) {
    let p = utf8(PIECES[r(PIECES.length)]);
    if (len + p.length > n) p = Buffer.alloc(n - len, 0x78);
    out.push(p);
    len += p.length;
  }
  return Buffer.concat(out);
}

function binOf (n) {
  return crypto.randomBytes(n);
}

/** The frames of one message cut into fragments of `size` bytes. */
function fragmented (opcode, payload, size) {
  if (payload.length === 0) return frame(opcode, payload);
  const frames = [];
  for (let off = 0; off < payload.length; off += size) {
    frames.push(frame(off === 0 ? opcode : OP.CONT, payload.subarray(off, off + size),
      { fin: off + size >= payload.length }));
  }
  return Buffer.concat(frames);
}

/** The frames of one message cut at the given payload offsets. */
function cutAt (opcode, payload, cuts) {
  const points = [0, ...cuts, payload.length];
  const frames = [];
  for (let i = 0; i + 1 < points.length; i++) {
    frames.push(frame(i === 0 ? opcode : OP.CONT, payload.subarray(points[i], points[i + 1]),
      { fin: i + 2 === points.length }));
  }
  return Buffer.concat(frames);
}

/**
 * Fail-fast helper: waits up to `ms` (FAST_MS) for the server to fail the
 * connection on what was sent so far, notes the time, then sends `rest`.
 */
async function holdThenSend (c, rest, chop, ms) {
  // The hold starts once what came before has left our socket buffer.
  await c.drain();
  await c.waitFor(() => c.has('close') || c.tcpGone(), ms || FAST_MS);
  c.restAt = c.now();
  await c.write(rest, chop);
}

const send = (...frames) => async (c) => c.write(Buffer.concat(frames));
const sendChopped = (chop, ...frames) => async (c) => c.write(Buffer.concat(frames), chop);

// ---------------------------------------------------------------- 1 framing
{
  const lengths = [0, 1, 125, 126, 127, 128, 1000, 65535, 65536, 65537];
  const modes = [
    ['whole', 'whole'],
    ['1-byte writes', 1],
    ['2-byte writes', 2],
    ['random 1..40-byte writes', { random: 40 }]
  ];
  let sub = 1;
  for (const [kind, op] of [['text', OP.TEXT], ['binary', OP.BINARY]]) {
    for (const [mname, chop] of modes) {
      let n = 1;
      for (const len of lengths) {
        const payload = op === OP.TEXT ? textOf(len, len + 7) : binOf(len);
        add(`1.${sub}.${n++}`, `${kind} message of ${len} bytes, ${mname}`,
          sendChopped(chop, frame(op, payload)), { data: [M(op, payload)] });
      }
      sub++;
    }
  }
  // sub is 9 here
  let n = 1;
  for (const len of [1, 126, 65536]) {
    const payload = textOf(len, 3);
    const f = frame(OP.TEXT, payload);
    const headLen = f.length - len;
    add(`1.9.${n++}`, `text of ${len} bytes: header, then payload 100 ms later`,
      async (c) => {
        await c.write(f.subarray(0, headLen));
        await sleep(100);
        await c.write(f.subarray(headLen));
      }, { data: [M(OP.TEXT, payload)] });
  }
  {
    const msgs = [];
    const frames = [];
    for (let i = 0; i < 20; i++) {
      const op = i % 2 ? OP.BINARY : OP.TEXT;
      const p = op === OP.TEXT ? textOf(i * 13, i) : binOf(i * 13);
      msgs.push(M(op, p));
      frames.push(frame(op, p));
    }
    add('1.9.4', '20 text and binary messages in one write', send(...frames), { data: msgs });
    add('1.9.5', '20 text and binary messages in random 1..7-byte writes',
      sendChopped({ random: 7 }, ...frames), { data: msgs });
  }
  {
    const msgs = [];
    const frames = [];
    for (let i = 0; i < 1000; i++) {
      const p = utf8('m' + i);
      msgs.push(M(OP.TEXT, p));
      frames.push(frame(OP.TEXT, p));
    }
    add('1.9.6', '1000 small text messages in one write', send(...frames), { data: msgs });
  }
  add('1.9.7', 'text message of 126 bytes (16-bit length) in 3-byte writes',
    sendChopped(3, frame(OP.TEXT, textOf(126, 5))), { data: [M(OP.TEXT, textOf(126, 5))] });
}

// -------------------------------------------------------------- 2 ping/pong
{
  const all125 = Buffer.alloc(125);
  for (let i = 0; i < 125; i++) all125[i] = (i * 7 + 255) & 0xff;
  add('2.1.1', 'ping without payload', send(frame(OP.PING)), { data: [PONG('')] });
  add('2.1.2', 'ping with a short text payload', send(frame(OP.PING, 'Hello, world!')),
    { data: [PONG('Hello, world!')] });
  add('2.1.3', 'ping with a binary payload', send(frame(OP.PING, hex('00ff fe01 8081'))),
    { data: [PONG(hex('00ff fe01 8081'))] });
  add('2.1.4', 'ping with 125 bytes (the maximum)', send(frame(OP.PING, all125)),
    { data: [PONG(all125)] });
  add('2.1.5', 'ping with 126 bytes fails the connection',
    send(frame(OP.PING, Buffer.alloc(126, 0x61))), FAIL([1002]));
  add('2.1.6', 'ping announcing 65536 bytes fails at its header',
    async (c) => {
      const f = frame(OP.PING, Buffer.alloc(65536, 0x61));
      await c.write(f.subarray(0, 14));
      await holdThenSend(c, f.subarray(14));
    }, FAIL([1002], { fast: true }));
  add('2.1.7', 'ping with 125 bytes in 1-byte writes', sendChopped(1, frame(OP.PING, all125)),
    { data: [PONG(all125)] });
  add('2.1.8', 'ping with 4 bytes in 1-byte writes', sendChopped(1, frame(OP.PING, 'ping')),
    { data: [PONG('ping')] });
  add('2.2.1', 'unsolicited empty pong is ignored', send(frame(OP.PONG), frame(OP.TEXT, 'still here')),
    { data: [M(OP.TEXT, 'still here')] });
  add('2.2.2', 'unsolicited pong with payload is ignored',
    send(frame(OP.PONG, 'unsolicited'), frame(OP.TEXT, 'still here')),
    { data: [M(OP.TEXT, 'still here')] });
  add('2.2.3', 'unsolicited pong, then ping: only the ping is answered',
    send(frame(OP.PONG, 'unsolicited'), frame(OP.PING, 'solicited')),
    { data: [PONG('solicited')] });
  add('2.2.4', 'pong with 126 bytes fails the connection',
    send(frame(OP.PONG, Buffer.alloc(126, 0x62))), FAIL([1002]));
  add('2.3.1', 'fragmented ping (FIN clear) fails the connection',
    send(frame(OP.PING, 'frag', { fin: false }), frame(OP.CONT, 'ment')), FAIL([1002]));
  add('2.3.2', 'fragmented pong (FIN clear) fails the connection',
    send(frame(OP.PONG, 'frag', { fin: false }), frame(OP.CONT, 'ment')), FAIL([1002]));
  add('2.3.3', 'fragmented ping is refused at its header',
    async (c) => {
      const f = frame(OP.PING, 'fragment', { fin: false });
      await c.write(f.subarray(0, 2));
      await holdThenSend(c, Buffer.concat([f.subarray(2), frame(OP.CONT, 'x')]));
    }, FAIL([1002], { fast: true }));
  {
    const frames = [];
    const pongs = [];
    for (let i = 0; i < 10; i++) {
      frames.push(frame(OP.PING, 'ping ' + i));
      pongs.push(PONG('ping ' + i));
    }
    add('2.4.1', '10 pings in one write, 10 pongs in order', send(...frames), { data: pongs });
    add('2.4.2', '10 pings in 1-byte writes', sendChopped(1, ...frames), { data: pongs });
    add('2.4.3', '10 pings, 10 ms apart', async (c) => {
      for (const f of frames) {
        await c.write(f);
        await sleep(10);
      }
    }, { data: pongs });
  }
  {
    const frames = [];
    const want = [];
    for (let i = 0; i < 100; i++) {
      const p = binOf(i % 126);
      frames.push(frame(OP.PING, p));
      want.push(PONG(p));
      if (i % 10 === 0) {
        frames.push(frame(OP.TEXT, 'msg ' + i));
        want.push(M(OP.TEXT, 'msg ' + i));
      }
    }
    add('2.4.4', '100 pings of 0..99 bytes mixed with messages', send(...frames), { data: want });
  }
  add('2.5.1', 'ping with payload, masked with an all-zero key',
    send(frame(OP.PING, 'zero mask', { maskKey: [0, 0, 0, 0] })), { data: [PONG('zero mask')] });
}

// -------------------------------------------------------- 3 reserved bits
{
  for (let rsv = 1; rsv <= 7; rsv++) {
    const bits = ['RSV1', 'RSV2', 'RSV3'].filter((_, i) => rsv & (4 >> i)).join('+');
    add(`3.${rsv}.1`, `text with ${bits} after a valid message; the message after it is not echoed`,
      send(frame(OP.TEXT, 'Hello'), frame(OP.TEXT, 'reserved', { rsv }), frame(OP.TEXT, 'after')),
      FAIL([1002], { data: [M(OP.TEXT, 'Hello')] }));
    add(`3.${rsv}.2`, `binary with ${bits}`,
      send(frame(OP.BINARY, hex('00ff00ff'), { rsv })), FAIL([1002]));
    add(`3.${rsv}.3`, `ping with ${bits} (no pong)`,
      send(frame(OP.PING, 'ping', { rsv })), FAIL([1002]));
    add(`3.${rsv}.4`, `pong with ${bits}`,
      send(frame(OP.PONG, 'pong', { rsv })), FAIL([1002]));
    add(`3.${rsv}.5`, `close with ${bits}`,
      send(frame(OP.CLOSE, closePayload(1000), { rsv })), FAIL([1002]));
    add(`3.${rsv}.6`, `continuation with ${bits} inside a fragmented text`,
      send(frame(OP.TEXT, 'frag', { fin: false }), frame(OP.CONT, 'ment', { rsv })), FAIL([1002]));
    add(`3.${rsv}.7`, `text with ${bits} in 1-byte writes, after a ping`,
      sendChopped(1, frame(OP.PING, 'p'), frame(OP.TEXT, 'reserved', { rsv })),
      FAIL([1002], { data: [PONG('p')] }));
  }
  for (const rsv of [4, 2, 1]) {
    add(`3.8.${rsv}`, `binary of 1000 bytes with RSV bits ${rsv} is refused at its header`,
      async (c) => {
        const f = frame(OP.BINARY, binOf(1000), { rsv });
        await c.write(f.subarray(0, 2));
        await holdThenSend(c, f.subarray(2));
      }, FAIL([1002], { fast: true }));
  }
}

// ------------------------------------------------------- 4 reserved opcodes
{
  let sub = 1;
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    const kind = op < 8 ? 'data' : 'control';
    add(`4.${sub}.1`, `reserved ${kind} opcode ${op}, empty`, send(frame(op)), FAIL([1002]));
    add(`4.${sub}.2`, `reserved ${kind} opcode ${op} with payload`,
      send(frame(op, 'reserved payload')), FAIL([1002]));
    add(`4.${sub}.3`, `opcode ${op} between valid messages: only the first is echoed`,
      send(frame(OP.TEXT, 'before'), frame(op, 'x'), frame(OP.TEXT, 'after')),
      FAIL([1002], { data: [M(OP.TEXT, 'before')] }));
    add(`4.${sub}.4`, `opcode ${op} with FIN clear, after a ping`,
      send(frame(OP.PING, 'p'), frame(op, 'x', { fin: false }), frame(OP.CONT, 'y')),
      FAIL([1002], { data: [PONG('p')] }));
    add(`4.${sub}.5`, `opcode ${op} with 500 bytes is refused at its header`,
      async (c) => {
        const f = frame(op, binOf(500));
        await c.write(f.subarray(0, 2));
        await holdThenSend(c, f.subarray(2));
      }, FAIL([1002], { fast: true }));
    sub++;
  }
}

// ---------------------------------------------------------- 5 fragmentation
{
  const t = textOf(200, 11);
  const b = binOf(200);
  add('5.1.1', 'text in 2 fragments', send(cutAt(OP.TEXT, t, [100])), { data: [M(OP.TEXT, t)] });
  add('5.1.2', 'binary in 2 fragments', send(cutAt(OP.BINARY, b, [100])), { data: [M(OP.BINARY, b)] });
  add('5.1.3', 'text in 3 fragments, the middle one empty',
    send(cutAt(OP.TEXT, t, [50, 50])), { data: [M(OP.TEXT, t)] });
  add('5.1.4', 'text of empty fragments only',
    send(frame(OP.TEXT, '', { fin: false }), frame(OP.CONT, '', { fin: false }), frame(OP.CONT, '')),
    { data: [M(OP.TEXT, '')] });
  add('5.1.5', 'binary with an empty last fragment',
    send(cutAt(OP.BINARY, b, [200])), { data: [M(OP.BINARY, b)] });
  add('5.1.6', 'text in 1-byte fragments (characters cut across fragments)',
    send(fragmented(OP.TEXT, t, 1)), { data: [M(OP.TEXT, t)] });
  add('5.1.7', 'binary in 1-byte fragments', send(fragmented(OP.BINARY, b, 1)), { data: [M(OP.BINARY, b)] });
  add('5.1.8', 'text in 7-byte fragments, in 1-byte writes',
    sendChopped(1, fragmented(OP.TEXT, t, 7)), { data: [M(OP.TEXT, t)] });
  add('5.1.9', 'text in 3 fragments, 100 ms apart', async (c) => {
    await c.write(frame(OP.TEXT, t.subarray(0, 60), { fin: false }));
    await sleep(100);
    await c.write(frame(OP.CONT, t.subarray(60, 120), { fin: false }));
    await sleep(100);
    await c.write(frame(OP.CONT, t.subarray(120)));
  }, { data: [M(OP.TEXT, t)] });
  add('5.1.10', 'fragmented text, then fragmented binary, then a plain text',
    send(cutAt(OP.TEXT, t, [10, 20]), cutAt(OP.BINARY, b, [30]), frame(OP.TEXT, 'plain')),
    { data: [M(OP.TEXT, t), M(OP.BINARY, b), M(OP.TEXT, 'plain')] });
  add('5.1.11', 'the 4-byte character U+1D11E cut across 4 fragments',
    send(cutAt(OP.TEXT, utf8('a𝄞b'), [2, 3, 4])), { data: [M(OP.TEXT, 'a𝄞b')] });
  add('5.2.1', 'ping between fragments is answered first',
    send(frame(OP.TEXT, 'frag', { fin: false }), frame(OP.PING, 'in between'), frame(OP.CONT, 'ment')),
    { data: [PONG('in between'), M(OP.TEXT, 'fragment')] });
  add('5.2.2', 'pong between fragments is ignored',
    send(frame(OP.BINARY, 'frag', { fin: false }), frame(OP.PONG, 'x'), frame(OP.CONT, 'ment')),
    { data: [M(OP.BINARY, 'fragment')] });
  {
    const frames = [];
    const want = [];
    for (let i = 0; i < 20; i++) {
      frames.push(frame(i ? OP.CONT : OP.TEXT, 'f' + i, { fin: i === 19 }));
      if (i < 19) {
        frames.push(frame(OP.PING, 'p' + i));
        want.push(PONG('p' + i));
      }
    }
    want.push(M(OP.TEXT, Array.from({ length: 20 }, (_, i) => 'f' + i).join('')));
    add('5.2.3', 'a ping after each of 20 fragments', send(...frames), { data: want });
    add('5.2.4', 'a ping after each of 20 fragments, in 1-byte writes',
      sendChopped(1, ...frames), { data: want });
  }
  add('5.2.5', 'close between fragments: close echoed, the message is not',
    async (c) => {
      c.closeSent = true;
      await c.write(Buffer.concat([frame(OP.TEXT, 'frag', { fin: false }),
        frame(OP.CLOSE, closePayload(1000, 'mid-message'))]));
    }, { close: closePayload(1000, 'mid-message') });
  add('5.2.6', 'fragmented ping between fragments fails the connection',
    send(frame(OP.TEXT, 'frag', { fin: false }), frame(OP.PING, 'x', { fin: false }),
      frame(OP.CONT, 'y'), frame(OP.CONT, 'ment')), FAIL([1002]));
  add('5.3.1', 'continuation (FIN set) without a message', send(frame(OP.CONT, 'orphan')), FAIL([1002]));
  add('5.3.2', 'continuation (FIN clear) without a message',
    send(frame(OP.CONT, 'orphan', { fin: false }), frame(OP.CONT, 'x')), FAIL([1002]));
  add('5.3.3', 'continuation after a complete message',
    send(frame(OP.TEXT, 'done'), frame(OP.CONT, 'orphan')),
    FAIL([1002], { data: [M(OP.TEXT, 'done')] }));
  add('5.3.4', 'empty continuation without a message, in 1-byte writes',
    sendChopped(1, frame(OP.CONT, '')), FAIL([1002]));
  add('5.3.5', 'continuation without a message is refused at its header',
    async (c) => {
      const f = frame(OP.CONT, binOf(300));
      await c.write(f.subarray(0, 2));
      await holdThenSend(c, f.subarray(2));
    }, FAIL([1002], { fast: true }));
  add('5.4.1', 'text frame inside a fragmented text',
    send(frame(OP.TEXT, 'frag', { fin: false }), frame(OP.TEXT, 'new'), frame(OP.CONT, 'ment')),
    FAIL([1002]));
  add('5.4.2', 'binary frame inside a fragmented text',
    send(frame(OP.TEXT, 'frag', { fin: false }), frame(OP.BINARY, 'new'), frame(OP.CONT, 'ment')),
    FAIL([1002]));
  add('5.4.3', 'text first fragment inside a fragmented binary',
    send(frame(OP.BINARY, 'frag', { fin: false }), frame(OP.TEXT, 'new', { fin: false }),
      frame(OP.CONT, 'ment')), FAIL([1002]));
  add('5.4.4', 'new message inside a fragmented one, after a ping, in 1-byte writes',
    sendChopped(1, frame(OP.BINARY, 'frag', { fin: false }), frame(OP.PING, 'p'),
      frame(OP.BINARY, 'new')), FAIL([1002], { data: [PONG('p')] }));
  add('5.4.5', 'fragmented message left open, then a new message after a complete one',
    send(frame(OP.TEXT, 'one'), frame(OP.TEXT, 'two', { fin: false }), frame(OP.TEXT, 'three')),
    FAIL([1002], { data: [M(OP.TEXT, 'one')] }));
}

// ------------------------------------------------------------------ 6 UTF-8
{
  const valid = [
    ['ASCII and Latin-1 letters', utf8('Hello-µ@ßöäüàá-UTF-8!!')],
    ['Greek kosme', hex('cebae1bdb9cf83cebcceb5')],
    ['U+0000', hex('00')],
    ['first 2-byte U+0080', hex('c280')],
    ['first 3-byte U+0800', hex('e0a080')],
    ['first 4-byte U+10000', hex('f0908080')],
    ['last 1-byte U+007F', hex('7f')],
    ['last 2-byte U+07FF', hex('dfbf')],
    ['last 3-byte U+FFFF', hex('efbfbf')],
    ['last code point U+10FFFF', hex('f48fbfbf')],
    ['U+D7FF below the surrogates', hex('ed9fbf')],
    ['U+E000 above the surrogates', hex('ee8080')],
    ['U+FFFD', hex('efbfbd')],
    ['noncharacters U+FFFE U+FDD0 U+10FFFE', hex('efbfbe efb790 f48fbfbe')],
    ['all 128 one-byte characters', Buffer.from(Array.from({ length: 128 }, (_, i) => i))],
    ['mixed scripts and emoji', utf8('Ünïcödé ☃ 日本語 한국어 עברית 😀👍🏽 𝄞')],
    ['4 KiB of mixed-width characters', textOf(4096, 99)]
  ];
  const invalid = [
    ['U+110000 (above the last code point)', hex('f4908080')],
    ['lead byte F5', hex('f5808080')],
    ['lead byte F7', hex('f7bfbfbf')],
    ['5-byte form F8 88 80 80 80', hex('f888808080')],
    ['5-byte form FB BF BF BF BF', hex('fbbfbfbfbf')],
    ['6-byte form FC 84 80 80 80 80', hex('fc8480808080')],
    ['6-byte form FD BF BF BF BF BF', hex('fdbfbfbfbfbf')],
    ['lone continuation 80', hex('80')],
    ['lone continuation BF', hex('bf')],
    ['continuations 80 BF 80 BF', hex('80bf80bf')],
    ['all 64 continuation bytes', Buffer.from(Array.from({ length: 64 }, (_, i) => 0x80 + i))],
    ['lead C2 followed by a space', hex('c220')],
    ['lead E1 80 followed by a space', hex('e18020')],
    ['lead F1 80 80 followed by a space', hex('f1808020')],
    ['lead E0 followed by a space', hex('e020')],
    ['every 2-byte lead followed by a space', Buffer.from(Array.from({ length: 64 }, (_, i) => [0xc0 + (i >> 1), 0x20][i & 1]))],
    ['truncated 2-byte C2 at the end', hex('c2')],
    ['truncated 3-byte E0 A0 at the end', hex('e0a0')],
    ['truncated 3-byte E1 80 at the end', hex('e180')],
    ['truncated 3-byte ED 9F at the end', hex('ed9f')],
    ['truncated 4-byte F0 90 80 at the end', hex('f09080')],
    ['truncated 4-byte F4 8F BF at the end', hex('f48fbf')],
    ['overlong slash C0 AF', hex('c0af')],
    ['overlong C1 BF', hex('c1bf')],
    ['overlong slash E0 80 AF', hex('e080af')],
    ['overlong E0 9F BF', hex('e09fbf')],
    ['overlong slash F0 80 80 AF', hex('f08080af')],
    ['overlong F0 8F BF BF', hex('f08fbfbf')],
    ['overlong NUL C0 80', hex('c080')],
    ['surrogate U+D800', hex('eda080')],
    ['surrogate U+DB7F', hex('edadbf')],
    ['surrogate U+DB80', hex('edae80')],
    ['surrogate U+DBFF', hex('edafbf')],
    ['surrogate U+DC00', hex('edb080')],
    ['surrogate U+DF80', hex('edbe80')],
    ['surrogate U+DFFF', hex('edbfbf')],
    ['surrogate pair U+D800 U+DC00', hex('eda080edb080')],
    ['surrogate pair U+DBFF U+DFFF', hex('edafbfedbfbf')],
    ['byte FE', hex('fe')],
    ['byte FF', hex('ff')],
    ['bytes FE FE FF FF', hex('fefeffff')],
    ['kosme, a surrogate, then text', Buffer.concat([hex('cebae1bdb9cf83cebcceb5'), hex('eda080'), utf8('edited')])],
    ['every 3-byte lead followed by a space', Buffer.from(Array.from({ length: 32 }, (_, i) => [0xe0 + (i >> 1), 0x20][i & 1]))],
    ['every 4-byte-form lead F0-F7 followed by a space', Buffer.from(Array.from({ length: 16 }, (_, i) => [0xf0 + (i >> 1), 0x20][i & 1]))],
    ['5- and 6-byte-form leads F8-FD followed by a space', hex('f820f920fa20fb20fc20fd20')],
    ['maximum overlong 5-byte F8 87 BF BF BF', hex('f887bfbfbf')],
    ['maximum overlong 6-byte FC 83 BF BF BF BF', hex('fc83bfbfbfbf')],
    ['overlong NUL E0 80 80', hex('e08080')],
    ['overlong NUL F0 80 80 80', hex('f0808080')],
    ['overlong NUL F8 80 80 80 80', hex('f880808080')],
    ['last continuation missing from every length, concatenated', hex('c0 e080 f08080 f8808080 fc80808080 df efbf f7bfbf fbbfbfbf fdbfbfbfbf')],
    ['truncated 2-byte DF at the end', hex('df')],
    ['truncated 3-byte EF BF at the end', hex('efbf')],
    ['truncated 4-byte F1 80 80 at the end', hex('f18080')],
    ['surrogate ED A0 at the end (refused before the last byte)', hex('eda0')]
  ];
  let n = 1;
  for (const [name, bytes] of valid) {
    add(`6.1.${n}`, `valid: ${name}, one frame`, send(frame(OP.TEXT, bytes)), { data: [M(OP.TEXT, bytes)] });
    add(`6.2.${n}`, `valid: ${name}, 1-byte fragments`, send(fragmented(OP.TEXT, bytes, 1)),
      { data: [M(OP.TEXT, bytes)] });
    add(`6.3.${n}`, `valid: ${name}, 1-byte writes`, sendChopped(1, frame(OP.TEXT, bytes)),
      { data: [M(OP.TEXT, bytes)] });
    n++;
  }
  n = 1;
  for (const [name, seq] of invalid) {
    // Truncated sequences must end the message; the others sit inside text.
    const bytes = /at the end/.test(name) ? Buffer.concat([utf8('text '), seq])
      : Buffer.concat([utf8('text '), seq, utf8(' more')]);
    add(`6.4.${n}`, `invalid: ${name}, one frame`, send(frame(OP.TEXT, bytes)), FAIL([1007]));
    add(`6.5.${n}`, `invalid: ${name}, 1-byte fragments`, send(fragmented(OP.TEXT, bytes, 1)), FAIL([1007]));
    add(`6.6.${n}`, `invalid: ${name}, 1-byte writes, after a valid message`,
      sendChopped(1, frame(OP.TEXT, 'ok'), frame(OP.TEXT, bytes)),
      FAIL([1007], { data: [M(OP.TEXT, 'ok')] }));
    n++;
  }

  // Fail-fast: the invalid byte arrives, the rest of the frame or message
  // is held back; examples/echo must fail at once (the contract requires
  // fail-fast validation).  `ws` validates a text message only once it is
  // complete, which RFC 6455 8.1 allows (it requires failing, not when),
  // so for ws the same 1007 may come after the rest.
  const lazy = { ws: { fast: false } };
  const tail = utf8(' and the rest of the text'.repeat(40));
  const fastCases = [
    ['byte FF in the middle of a frame', hex('ff')],
    ['surrogate U+D800 in the middle of a frame', hex('eda080')],
    ['overlong C0 AF in the middle of a frame', hex('c0af')],
    ['F4 90 (above U+10FFFF) in the middle of a frame', hex('f490')],
    ['5-byte lead F8 in the middle of a frame', hex('f8')],
    ['lone continuation 80 at the start of a frame', hex('80')],
    ['E0 80 (overlong) in the middle of a frame', hex('e080')]
  ];
  n = 1;
  for (const [name, bad] of fastCases) {
    const start = /at the start/.test(name) ? Buffer.alloc(0) : utf8('Hello κόσμε ');
    const payload = Buffer.concat([start, bad, tail]);
    const f = frame(OP.TEXT, payload);
    const cut = f.length - tail.length;
    add(`6.7.${n++}`, `fail-fast: ${name}`, async (c) => {
      await c.write(f.subarray(0, cut));
      await holdThenSend(c, f.subarray(cut));
    }, FAIL([1007], Object.assign({ fast: true }, lazy)));
  }
  add(`6.7.${n++}`, 'fail-fast: invalid byte in 1-byte writes in the middle of a frame',
    async (c) => {
      const payload = Buffer.concat([utf8('Hello '), hex('fe'), tail]);
      const f = frame(OP.TEXT, payload);
      const cut = f.length - tail.length;
      await c.write(f.subarray(0, cut), 1);
      await holdThenSend(c, f.subarray(cut), 1);
    }, FAIL([1007], Object.assign({ fast: true }, lazy)));
  add(`6.7.${n++}`, 'fail-fast: invalid byte in a complete first fragment, later fragments held back',
    async (c) => {
      await c.write(frame(OP.TEXT, Buffer.concat([utf8('first '), hex('ff')]), { fin: false }));
      await holdThenSend(c, Buffer.concat([frame(OP.CONT, 'second', { fin: false }), frame(OP.CONT, 'last')]));
    }, FAIL([1007], Object.assign({ fast: true }, lazy)));
  add(`6.7.${n++}`, 'fail-fast: invalid byte in the second fragment',
    async (c) => {
      await c.write(Buffer.concat([frame(OP.TEXT, 'first ', { fin: false }),
        frame(OP.CONT, Buffer.concat([utf8('second '), hex('edbfbf')]), { fin: false })]));
      await holdThenSend(c, frame(OP.CONT, 'last'));
    }, FAIL([1007], Object.assign({ fast: true }, lazy)));
  add(`6.7.${n++}`, 'fail-fast: sequence started in one fragment, broken in the next',
    async (c) => {
      await c.write(Buffer.concat([frame(OP.TEXT, Buffer.concat([utf8('cut '), hex('e0')]), { fin: false }),
        frame(OP.CONT, Buffer.concat([hex('80'), utf8('rest')]), { fin: false })]));
      await holdThenSend(c, frame(OP.CONT, 'last'));
    }, FAIL([1007], Object.assign({ fast: true }, lazy)));
  add(`6.7.${n++}`, 'fail-fast: invalid byte mid-frame inside a fragment, ping first',
    async (c) => {
      const f = frame(OP.CONT, Buffer.concat([utf8('abc'), hex('c1'), tail]), { fin: false });
      const cut = f.length - tail.length;
      await c.write(Buffer.concat([frame(OP.PING, 'p'), frame(OP.TEXT, 'start ', { fin: false }), f.subarray(0, cut)]));
      await holdThenSend(c, Buffer.concat([f.subarray(cut), frame(OP.CONT, 'end')]));
    }, FAIL([1007], Object.assign({ fast: true, data: [PONG('p')] }, lazy)));
  // Word-at-a-time and SIMD validators work in blocks: put a bad sequence,
  // and a valid 4-byte character, at every offset across two 32-byte
  // blocks of a message (and so at every alignment).
  const bads = [hex('ff'), hex('c0af'), hex('eda080'), hex('f4908080'), hex('80'), hex('e08080'), hex('f8888080')];
  const ascii = utf8('The quick brown fox jumps over the lazy dog. '.repeat(3));
  for (let pos = 0; pos < 67; pos++) {
    const bad = bads[pos % bads.length];
    const payload = Buffer.concat([ascii.subarray(0, pos), bad, ascii.subarray(pos)]);
    add(`6.9.${pos + 1}`, `invalid ${bad.toString('hex')} at offset ${pos} of ASCII text`,
      send(frame(OP.TEXT, payload)), FAIL([1007]));
    const good = Buffer.concat([ascii.subarray(0, pos), utf8(pos % 2 ? '😀' : 'ж€'), ascii.subarray(pos)]);
    add(`6.10.${pos + 1}`, `valid multi-byte characters at offset ${pos} of ASCII text`,
      send(frame(OP.TEXT, good)), { data: [M(OP.TEXT, good)] });
  }
  {
    const t = textOf(1024 * 1024, 77);
    add('6.11.1', 'byte FF as the last byte of 1 MiB of text',
      send(frame(OP.TEXT, Buffer.concat([t.subarray(0, t.length - 1), hex('ff')]))), FAIL([1007]), { replyMs: 15000 });
    add('6.11.2', 'surrogate at offset 65536 of 1 MiB of text',
      send(frame(OP.TEXT, Buffer.concat([t.subarray(0, 65536), hex('edb080'), t.subarray(65536)]))), FAIL([1007]),
      { replyMs: 15000 });
    add('6.11.3', 'truncated character at the end of 1 MiB of text in 4 KiB fragments',
      send(fragmented(OP.TEXT, Buffer.concat([t, hex('f09f')]), 4096)), FAIL([1007]), { replyMs: 15000 });
  }
  add('6.8.1', 'text ending inside a character, in 3 fragments',
    send(cutAt(OP.TEXT, Buffer.concat([utf8('abc'), hex('f09f98')]), [2, 4])), FAIL([1007]));
  add('6.8.2', 'binary with invalid UTF-8 is not validated',
    send(frame(OP.BINARY, hex('ff fe c0af eda080 f8'))), { data: [M(OP.BINARY, hex('fffec0afeda080f8'))] });
  add('6.8.3', 'ping with invalid UTF-8 is not validated',
    send(frame(OP.PING, hex('ff c0af eda080'))), { data: [PONG(hex('ffc0afeda080'))] });
}

// -------------------------------------------------------------------- 7 close
{
  const closeCase = (id, desc, payload, opts) =>
    add(id, desc, async (c) => {
      c.closeSent = true;
      const f = frame(OP.CLOSE, payload, opts && opts.frame);
      const bytes = Buffer.concat([(opts && opts.before) || Buffer.alloc(0), f, (opts && opts.trailer) || Buffer.alloc(0)]);
      await c.write(bytes, opts && opts.chop);
      if (opts && opts.after) await opts.after(c);
    }, Object.assign({ close: payload }, opts && opts.expect));
  closeCase('7.1.1', 'empty close is answered with an empty close', Buffer.alloc(0));
  closeCase('7.1.2', 'close 1000 after a message', closePayload(1000),
    { before: frame(OP.TEXT, 'bye'), expect: { data: [M(OP.TEXT, 'bye')] } });
  closeCase('7.1.3', 'close 1000 with a reason', closePayload(1000, 'good bye'));
  closeCase('7.1.4', 'close with a 123-byte reason (125-byte payload)', closePayload(1000, 'r'.repeat(123)));
  closeCase('7.1.5', 'close with a 123-byte multi-byte UTF-8 reason',
    closePayload(1001, 'κόσμε€'.repeat(7) + 'é'.repeat(5) + 'a'));
  closeCase('7.1.6', 'close with reason in 1-byte writes', closePayload(3000, 'chopped'), { chop: 1 });
  closeCase('7.1.7', 'close then a text frame in the same write: the text is ignored', closePayload(1000),
    { trailer: frame(OP.TEXT, 'too late') });
  closeCase('7.1.8', 'close then a ping in the same write: no pong', closePayload(1000),
    { trailer: frame(OP.PING, 'too late') });
  closeCase('7.1.9', 'two close frames in one write: one answer', closePayload(1000, 'first'),
    { trailer: frame(OP.CLOSE, closePayload(1001, 'second')) });
  closeCase('7.1.13', 'close, then a text frame 50 ms later: ignored', closePayload(1000, 'wait'),
    { after: async (c) => { await sleep(50); await c.write(frame(OP.TEXT, 'too late')); } });
  closeCase('7.1.10', 'close, then the client shuts down its sending side', closePayload(1000, 'half'),
    { after: async (c) => c.sock.end() });
  closeCase('7.1.11', 'close with a valid UTF-8 reason', closePayload(4000, 'Ünïcödé 😀'));
  closeCase('7.1.12', 'close in the middle of a fragmented message', closePayload(1000),
    { before: Buffer.concat([frame(OP.BINARY, 'open', { fin: false }), frame(OP.PING, 'p')]),
      expect: { data: [PONG('p')] } });
  add('7.1.14', 'another client sends a close and resets at once; this one is still served',
    async (c) => {
      const other = new Conn(c.port, 9);
      await other.open();
      await other.write(frame(OP.CLOSE, closePayload(1000, 'gone')));
      other.sock.resetAndDestroy();
      await sleep(50);
      await c.write(frame(OP.TEXT, 'survived'));
    }, { data: [M(OP.TEXT, 'survived')] });
  add('7.2.1', 'close with a 1-byte payload', send(frame(OP.CLOSE, hex('03'))), FAIL([1002]));
  add('7.2.2', 'close with a 124-byte reason (126-byte payload)',
    send(frame(OP.CLOSE, closePayload(1000, 'r'.repeat(124)))), FAIL([1002]));
  add('7.2.3', 'close with an invalid UTF-8 reason', send(frame(OP.CLOSE, Buffer.concat([closePayload(1000), hex('ff')]))),
    FAIL([1007]));
  add('7.2.4', 'close with a reason ending in a truncated character',
    send(frame(OP.CLOSE, Buffer.concat([closePayload(1000, 'cut'), hex('e282')]))), FAIL([1007]));
  add('7.2.5', 'close with a surrogate in the reason',
    send(frame(OP.CLOSE, Buffer.concat([closePayload(1000), hex('eda080')]))), FAIL([1007]));
  add('7.2.6', 'close with an overlong in the reason, in 1-byte writes',
    sendChopped(1, frame(OP.CLOSE, Buffer.concat([closePayload(1000), hex('c0af')]))), FAIL([1007]));
  // Codes that may be sent (RFC 6455 7.4.1/7.4.2, IANA registry: 1012-1014
  // registered later; 3000-4999 for libraries and applications).
  let n = 1;
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
    3000, 3999, 4000, 4999]) {
    closeCase(`7.3.${n++}`, `close code ${code} is echoed`, closePayload(code));
  }
  closeCase(`7.3.${n++}`, 'close code 1008 with a reason is echoed', closePayload(1008, 'policy'));
  // Codes that must not appear on the wire: 0-999 unused, 1004 reserved,
  // 1005/1006/1015 for APIs only, 1016-2999 reserved for the RFC and its
  // extensions (unassigned so far), and from 5000 up undefined.
  n = 1;
  for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    add(`7.4.${n++}`, `close code ${code} fails the connection`,
      async (c) => {
        c.closeSent = true;
        await c.write(frame(OP.CLOSE, closePayload(code)));
      }, FAIL([1002]));
  }
}

// ------------------------------------------------------------- 9 big messages
{
  const big = { replyMs: 30000, timeout: 60000 };
  const sizes = [65536, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, MAX];
  let n = 1;
  for (const size of sizes) {
    const t = textOf(size, size);
    add(`9.1.${n++}`, `text of ${size} bytes`, send(frame(OP.TEXT, t)), { data: [M(OP.TEXT, t)] }, big);
  }
  n = 1;
  for (const size of sizes) {
    const b = binOf(size);
    add(`9.2.${n++}`, `binary of ${size} bytes`, send(frame(OP.BINARY, b)), { data: [M(OP.BINARY, b)] }, big);
  }
  {
    const t1 = textOf(1024 * 1024, 5);
    const b1 = binOf(1024 * 1024);
    const t4 = textOf(4 * 1024 * 1024, 6);
    const b16 = binOf(MAX);
    add('9.3.1', 'text of 1 MiB in 1024 fragments', send(fragmented(OP.TEXT, t1, 1024)), { data: [M(OP.TEXT, t1)] }, big);
    add('9.3.2', 'binary of 1 MiB in 16384 fragments of 64 bytes', send(fragmented(OP.BINARY, b1, 64)),
      { data: [M(OP.BINARY, b1)] }, big);
    add('9.3.3', 'text of 4 MiB in 4 KiB fragments', send(fragmented(OP.TEXT, t4, 4096)), { data: [M(OP.TEXT, t4)] }, big);
    add('9.3.4', 'binary of 16 MiB (the limit) in 4096 fragments', send(fragmented(OP.BINARY, b16, 4096)),
      { data: [M(OP.BINARY, b16)] }, big);
    add('9.3.5', 'text of 1 MiB in 999-byte fragments, a ping every fragment', async (c) => {
      const parts = [];
      for (let off = 0; off < t1.length; off += 999) {
        parts.push(frame(off ? OP.CONT : OP.TEXT, t1.subarray(off, off + 999), { fin: off + 999 >= t1.length }));
        if (off % (999 * 100) === 0) parts.push(frame(OP.PING, String(off)));
      }
      await c.write(Buffer.concat(parts));
    }, {
      data: [...Array.from({ length: Math.ceil(t1.length / 99900) }, (_, i) => PONG(String(i * 99900))), M(OP.TEXT, t1)]
    }, big);
    add('9.4.1', 'binary of 1 MiB in random 1..1500-byte writes', sendChopped({ random: 1500 }, frame(OP.BINARY, b1)),
      { data: [M(OP.BINARY, b1)] }, big);
    add('9.4.2', 'text of 1 MiB in random 1..1500-byte writes', sendChopped({ random: 1500 }, frame(OP.TEXT, t1)),
      { data: [M(OP.TEXT, t1)] }, big);
    add('9.4.3', 'text of 4 MiB in 64 KiB fragments, in random 1..9000-byte writes',
      sendChopped({ random: 9000 }, fragmented(OP.TEXT, t4, 65536)), { data: [M(OP.TEXT, t4)] }, big);
    add('9.4.4', 'text of 64 KiB in 1-byte writes', sendChopped(1, frame(OP.TEXT, t1.subarray(0, 65536))),
      { data: [M(OP.TEXT, t1.subarray(0, 65536))] }, big);
    {
      const msgs = [];
      const frames = [];
      for (let i = 0; i < 100; i++) {
        const p = i % 2 ? b1.subarray(i * 1000, i * 1000 + 65536) : t1.subarray(0, 65536);
        msgs.push(M(i % 2 ? OP.BINARY : OP.TEXT, p));
        frames.push(frame(i % 2 ? OP.BINARY : OP.TEXT, p));
      }
      add('9.4.5', '100 messages of 64 KiB in one go', send(...frames), { data: msgs }, big);
    }
  }
  // Over the 16 MiB limit: 1009, decided on the header.
  add('9.5.1', 'binary announcing 16 MiB + 1 fails at its header', async (c) => {
    const f = frame(OP.BINARY, Buffer.alloc(0), { lenValue: MAX + 1 });
    await c.write(f);
    await holdThenSend(c, Buffer.alloc(1000));
  }, FAIL([1009], { fast: true }), big);
  add('9.5.2', 'text announcing 16 MiB + 1 fails at its header', async (c) => {
    const f = frame(OP.TEXT, Buffer.alloc(0), { lenValue: MAX + 1 });
    await c.write(f);
    await holdThenSend(c, Buffer.alloc(1000, 0x61));
  }, FAIL([1009], { fast: true }), big);
  add('9.5.3', 'fragments adding up to 16 MiB + 1 fail at the crossing header', async (c) => {
    const half = Buffer.alloc(MAX / 2, 0x62);
    await c.write(Buffer.concat([frame(OP.BINARY, half, { fin: false }), frame(OP.CONT, half, { fin: false }),
      frame(OP.CONT, Buffer.alloc(0), { lenValue: 1 }).subarray(0, 6)]));
    // Longer hold: the server may still be reading the 16 MiB before it.
    await holdThenSend(c, Buffer.from('x'), 'whole', 5000);
  }, FAIL([1009], { fast: true }), big);
  add('9.5.4', 'binary announcing 4 GiB fails at its header', async (c) => {
    await c.write(frame(OP.BINARY, Buffer.alloc(0), { lenValue: 2 ** 32 }));
    await holdThenSend(c, Buffer.alloc(100));
  }, FAIL([1009], { fast: true }), big);
}

// ------------------------------------------------------------------- 10 misc
{
  const p = textOf(65536, 21);
  const b = binOf(10000);
  // Auto-fragmentation independence: whatever fragment size the client
  // chooses, the echo is the same whole message.
  let n = 1;
  for (const size of [1300, 4096, 65535, 1, 7]) {
    const payload = size < 10 ? p.subarray(0, 2000) : p;
    add(`10.1.${n++}`, `text of ${payload.length} bytes auto-fragmented into ${size}-byte frames`,
      send(fragmented(OP.TEXT, payload, size)), { data: [M(OP.TEXT, payload)] }, { replyMs: 10000 });
  }
  add(`10.1.${n++}`, 'binary of 10000 bytes in 100-byte fragments, random writes',
    sendChopped({ random: 300 }, fragmented(OP.BINARY, b, 100)), { data: [M(OP.BINARY, b)] });
  {
    // Every payload length from 0 to 70 back to back: the unmasking code
    // meets every alignment and every tail length.
    const frames = [];
    const want = [];
    for (let len = 0; len <= 70; len++) {
      const bb = binOf(len);
      frames.push(frame(OP.BINARY, bb));
      want.push(M(OP.BINARY, bb));
    }
    add('10.1.7', 'binary messages of every length 0..70 in one write', send(...frames), { data: want });
    add('10.1.8', 'binary messages of every length 0..70 in random 1..13-byte writes',
      sendChopped({ random: 13 }, ...frames), { data: want });
  }
  add('10.2.1', 'unmasked text frame fails the connection',
    send(frame(OP.TEXT, 'no mask', { mask: false })), FAIL([1002]));
  add('10.2.2', 'unmasked ping fails the connection (no pong)',
    send(frame(OP.PING, 'no mask', { mask: false })), FAIL([1002]));
  add('10.2.3', 'unmasked close fails the connection',
    send(frame(OP.CLOSE, closePayload(1000), { mask: false })), FAIL([1002]));
  add('10.2.4', 'text with an all-zero mask key is echoed',
    send(frame(OP.TEXT, 'zero key', { maskKey: [0, 0, 0, 0] })), { data: [M(OP.TEXT, 'zero key')] });
  // Non-minimal length forms.  The contract has examples/echo refuse them
  // (RFC 6455 5.2: "the minimal number of bytes MUST be used").  `ws` does
  // not check the length form and takes the frame, which the RFC allows a
  // receiver to do (the rule binds the sender), so for ws the message is
  // echoed.
  const laxLen = (msg) => ({ ws: { outcome: 'close', data: [M(OP.TEXT, msg)] } });
  add('10.3.1', '5-byte text with a 16-bit length', send(frame(OP.TEXT, 'short', { len: 16 })),
    FAIL([1002], laxLen('short')));
  add('10.3.2', '200-byte text with a 64-bit length', send(frame(OP.TEXT, 'x'.repeat(200), { len: 64 })),
    FAIL([1002], laxLen('x'.repeat(200))));
  add('10.3.3', 'empty text with a 64-bit length', send(frame(OP.TEXT, '', { len: 64 })),
    FAIL([1002], laxLen('')));
  // A 64-bit length with the top bit set is not a length at all (5.2: "the
  // most significant bit MUST be 0"): a protocol error by the contract.
  // ws reports it as a size it does not support, 1009.
  add('10.3.4', '64-bit length with the most significant bit set', async (c) => {
    const f = frame(OP.BINARY, Buffer.alloc(0), { lenValue: 2n ** 63n + 5n });
    await c.write(f);
    await holdThenSend(c, Buffer.alloc(10));
  }, FAIL([1002], { fast: true, ws: { codes: [1009] } }));
  // Control frames may not use the 16-bit length form at all (5.5: their
  // 7-bit length is at most 125).
  add('10.3.5', 'ping of 5 bytes announced with the 16-bit length form',
    send(frame(OP.PING, 'short', { len: 16 })), FAIL([1002]));
  add('10.3.6', 'close announced with the 64-bit length form',
    send(frame(OP.CLOSE, closePayload(1000), { len: 64 })), FAIL([1002]));
  add('10.4.1', 'first frame in the same packet as the handshake', async () => {},
    { data: [M(OP.TEXT, 'early')] }, { extra: frame(OP.TEXT, 'early') });
  add('10.4.2', 'ping, text and close in the same packet as the handshake', async (c) => {
    c.closeSent = true;
  }, { data: [PONG('p'), M(OP.TEXT, 'early')], close: closePayload(1000, 'early close') },
  { extra: Buffer.concat([frame(OP.PING, 'p'), frame(OP.TEXT, 'early'), frame(OP.CLOSE, closePayload(1000, 'early close'))]) });
  add('10.5.1', 'client shuts down its side mid-frame: connection dropped, nothing echoed',
    async (c) => {
      const f = frame(OP.TEXT, 'never finished');
      await c.write(f.subarray(0, 8));
      c.sock.end();
    }, { outcome: 'drop' });
  add('10.5.2', 'message, then the client shuts down its side: echoed, then dropped',
    async (c) => {
      await c.write(frame(OP.TEXT, 'last words'));
      c.sock.end();
    }, { outcome: 'drop', data: [M(OP.TEXT, 'last words')] });
  add('10.5.3', 'another client resets mid-frame; this one is still served',
    async (c) => {
      const other = new Conn(c.port, 7);
      await other.open();
      await other.write(frame(OP.BINARY, binOf(5000)).subarray(0, 3000));
      await sleep(50);
      other.sock.resetAndDestroy();
      await sleep(50);
      await c.write(frame(OP.TEXT, 'survived'));
    }, { data: [M(OP.TEXT, 'survived')] });
  add('10.5.4', '10 clients reset mid-frame, mid-header and mid-close; the server goes on',
    async (c) => {
      for (let i = 0; i < 10; i++) {
        const other = new Conn(c.port, 100 + i);
        await other.open();
        const f = i % 3 === 0 ? frame(OP.TEXT, textOf(100000, i))
          : i % 3 === 1 ? frame(OP.BINARY, binOf(300)) : frame(OP.CLOSE, closePayload(1000, 'bye'));
        await other.write(f.subarray(0, i % 3 === 1 ? 1 : Math.floor(f.length / 2)));
        await sleep(5);
        other.sock.resetAndDestroy();
      }
      await sleep(100);
      await c.write(frame(OP.TEXT, 'still alive'));
    }, { data: [M(OP.TEXT, 'still alive')] });
  add('10.6.1', '10 clients at once, 50 messages each, all echoed to their sender',
    async (c) => {
      const conns = [];
      for (let i = 0; i < 10; i++) conns.push(new Conn(c.port, 200 + i));
      await Promise.all(conns.map((o) => o.open()));
      const want = conns.map((o, i) => Array.from({ length: 50 }, (_, j) => `client ${i} message ${j}`));
      await Promise.all(conns.map((o, i) => o.write(Buffer.concat(want[i].map((m) => frame(OP.TEXT, m))), { random: 50 })));
      try {
        for (let i = 0; i < conns.length; i++) {
          const o = conns[i];
          await o.waitFor(() => o.count(['message']) >= 50 || o.tcpGone(), 5000);
          const got = o.events.filter((e) => e.type === 'message').map((e) => e.payload.toString());
          if (got.join('\n') !== want[i].join('\n')) throw new Error(`client ${i} got ${got.length} wrong echoes`);
        }
      } finally {
        for (const o of conns) o.destroy();
      }
      await c.write(frame(OP.TEXT, 'done'));
    }, { data: [M(OP.TEXT, 'done')] });
  {
    const r = rng(4242);
    const frames = [];
    const want = [];
    for (let i = 0; i < 200; i++) {
      const k = r(4);
      if (k === 0) {
        const t = textOf(r(300), i);
        frames.push(fragmented(OP.TEXT, t, 1 + r(50)));
        want.push(M(OP.TEXT, t));
      } else if (k === 1) {
        const bb = binOf(r(300));
        frames.push(frame(OP.BINARY, bb));
        want.push(M(OP.BINARY, bb));
      } else if (k === 2) {
        const pp = binOf(r(126));
        frames.push(frame(OP.PING, pp));
        want.push(PONG(pp));
      } else {
        frames.push(frame(OP.PONG, binOf(r(20))));
      }
    }
    add('10.7.1', '200 random frames (fragmented text, binary, pings, pongs) in random writes',
      sendChopped({ random: 100 }, ...frames), { data: want });
  }
}

// ------------------------------------------------------------------ 12, 13
// permessage-deflate (RFC 7692), in the shapes of a fuzzing client's
// groups 12 and 13: messages of growing size, text and binary, whole or
// in fragments, sent compressed (context taken over unless agreed
// otherwise) and echoed compressed; then each parameter offered.  The
// raw client compresses with zlib and inflates the echoes (raw-client.js).
{
  const compressed = (msgs, fragSize, chop) => async (c) => {
    if (!c.pmd) throw new Error('permessage-deflate was not agreed');
    await c.write(Buffer.concat(msgs.map((m) => c.compressedFrames(m.opcode, m.payload, fragSize))), chop);
  };
  const sizes = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
  const DEFAULT_OFFER = 'permessage-deflate; client_max_window_bits';
  let n = 0;
  for (const [ti, text] of [[1, true], [2, false]]) {
    for (const [fi, frag] of [[1, 0], [2, 256]]) {
      sizes.forEach((size, si) => {
        n++;
        const msgs = [];
        for (let k = 0; k < 10; k++) {
          msgs.push(text ? M(OP.TEXT, textOf(size, 1000 * n + k)) : M(OP.BINARY, binOf(size)));
        }
        add(`12.${ti * 2 + fi - 2}.${si + 1}`,
          `10 compressed ${text ? 'text' : 'binary'} messages of ${size} bytes` +
          (frag ? ` in fragments of ${frag} compressed bytes` : ''),
          compressed(msgs, frag, size <= 1024 ? { random: 64 } : 'whole'), { data: msgs },
          { deflate: DEFAULT_OFFER, timeout: 60000 });
      });
    }
  }
  {
    const a = M(OP.TEXT, textOf(500, 1));
    const b = M(OP.BINARY, binOf(300));
    const d = M(OP.TEXT, textOf(500, 1));
    add('12.5.1', 'compressed and plain messages interleaved, context kept across them',
      async (c) => {
        await c.write(Buffer.concat([c.compressedFrames(a.opcode, a.payload, 0), frame(OP.BINARY, b.payload),
          c.compressedFrames(d.opcode, d.payload, 7)]), { random: 40 });
      }, { data: [a, b, d] }, { deflate: DEFAULT_OFFER });
  }
  add('12.6.1', 'RSV1 on a continuation frame fails the connection',
    async (c) => {
      await c.write(Buffer.concat([frame(OP.TEXT, hex('f248cd'), { fin: false, rsv: 4 }),
        frame(OP.CONT, hex('c9c90700'), { rsv: 4 })]));
    }, FAIL([1002]), { deflate: DEFAULT_OFFER });
  add('12.6.2', 'RSV1 on a ping fails the connection',
    send(frame(OP.PING, 'x', { rsv: 4 })), FAIL([1002]), { deflate: DEFAULT_OFFER });
  add('12.6.3', 'corrupt compressed data (block type 3) fails the connection',
    send(frame(OP.BINARY, hex('ffffffff'), { rsv: 4 })), FAIL([1002, 1007]), { deflate: DEFAULT_OFFER });
  // ws inflates with Z_SYNC_FLUSH and does not check that the message
  // ended on a block boundary: it delivers what zlib made of the bits.
  add('12.6.4', 'a compressed message cut inside a block fails the connection',
    send(frame(OP.BINARY, hex('f248cd'), { rsv: 4 })), FAIL([1002, 1007], {
      ws: { outcome: 'close', codes: [1002], data: [M(OP.BINARY, require('zlib').inflateRawSync(hex('f248cd0000ffff'),
        { finishFlush: require('zlib').constants.Z_SYNC_FLUSH }))] }
    }), { deflate: DEFAULT_OFFER });
  add('12.6.5', 'compressed text that inflates to bad UTF-8 is closed with 1007',
    async (c) => {
      const z = require('zlib');
      const bad = z.deflateRawSync(Buffer.from([0x61, 0xc0, 0x80, 0x62]), { finishFlush: z.constants.Z_SYNC_FLUSH });
      await c.write(frame(OP.TEXT, bad.subarray(0, bad.length - 4), { rsv: 4 }));
    }, FAIL([1007]), { deflate: DEFAULT_OFFER });
  add('12.6.6', 'a 64 MiB bomb (64 KiB compressed) is closed with 1009',
    async (c) => {
      const z = require('zlib');
      const bomb = z.deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { level: 9, finishFlush: z.constants.Z_SYNC_FLUSH });
      await c.write(frame(OP.BINARY, bomb.subarray(0, bomb.length - 4), { rsv: 4 }));
    }, FAIL([1009]), { deflate: DEFAULT_OFFER, timeout: 60000 });

  const offers = [
    'permessage-deflate',
    'permessage-deflate; client_no_context_takeover',
    'permessage-deflate; server_no_context_takeover',
    'permessage-deflate; client_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; client_max_window_bits=9',
    'permessage-deflate; server_max_window_bits=9',
    'permessage-deflate; client_max_window_bits=15; server_max_window_bits=15',
    'permessage-deflate; client_max_window_bits=9; server_max_window_bits=9; ' +
      'client_no_context_takeover; server_no_context_takeover'
  ];
  offers.forEach((offer, oi) => {
    [64, 4096, 65536].forEach((size, si) => {
      const msgs = [];
      for (let k = 0; k < 10; k++) msgs.push(M(k % 2 ? OP.BINARY : OP.TEXT, textOf(size, 7000 + 10 * oi + k)));
      add(`13.${oi + 1}.${si + 1}`, `offer "${offer}": 10 messages of ${size} bytes`,
        compressed(msgs, si === 1 ? 1000 : 0, 'whole'), { data: msgs }, { deflate: offer, timeout: 60000 });
    });
  });
}

module.exports = { cases, FAST_MS };
