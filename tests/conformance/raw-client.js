'use strict';
// Raw-socket WebSocket client for the conformance suite.  It speaks just
// enough RFC 6455 to drive a server under test: it builds any frame,
// valid or not, writes bytes whole or chopped into small writes, and
// records, with timestamps, every frame, FIN, reset and error the server
// produces, checking the server's own frames for protocol violations.

const net = require('net');
const crypto = require('crypto');
const zlib = require('zlib');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const OP = {
  CONT: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa
};

// Deterministic generator (xorshift32) so that a failing case replays
// with the same chunk sizes and masks.
function rng (seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  return function next (n) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return n === undefined ? x : x % n;
  };
}

function seedOf (text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

/**
 * Builds one frame.  Options: fin (default true), rsv (3 bits, RSV1 =
 * 4), mask (default true: clients must mask), maskKey (4 bytes), len
 * ('auto', 7, 16 or 64: the length form to use, even a non-minimal one),
 * lenValue (the length to announce instead of the payload's).
 */
function frame (opcode, payload, opts) {
  const o = opts || {};
  const data = payload === undefined ? Buffer.alloc(0) : Buffer.from(payload);
  const fin = o.fin === undefined ? true : o.fin;
  const mask = o.mask === undefined ? true : o.mask;
  const len = o.lenValue === undefined ? BigInt(data.length) : BigInt(o.lenValue);
  let form = o.len || 'auto';
  if (form === 'auto') form = len < 126n ? 7 : len < 65536n ? 16 : 64;
  const head = [((fin ? 0x80 : 0) | ((o.rsv || 0) << 4) | opcode) & 0xff];
  const m = mask ? 0x80 : 0;
  let ext;
  if (form === 7) {
    head.push(m | Number(len));
    ext = Buffer.alloc(0);
  } else if (form === 16) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len));
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len);
  }
  let key = Buffer.alloc(0);
  let body = data;
  if (mask) {
    key = o.maskKey ? Buffer.from(o.maskKey) : crypto.randomBytes(4);
    body = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  }
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

function closePayload (code, reason) {
  if (code === undefined) return Buffer.alloc(0);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason || '')]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Incremental parser of the server's frames.  Payload bytes are kept as a
 * list of chunks so that 16 MiB messages cost no repeated copying.
 */
/** The parameters of an agreed permessage-deflate answer. */
function parseDeflate (ext) {
  const p = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    rxHistory: Buffer.alloc(0),
    txHistory: Buffer.alloc(0)
  };
  for (const part of ext.split(';').slice(1)) {
    const [k, v] = part.trim().split('=').map((x) => x.trim());
    if (k === 'server_no_context_takeover') p.serverNoContextTakeover = true;
    else if (k === 'client_no_context_takeover') p.clientNoContextTakeover = true;
    else if (k === 'server_max_window_bits') p.serverMaxWindowBits = Number(v);
    else if (k === 'client_max_window_bits') p.clientMaxWindowBits = Number(v);
  }
  return p;
}

class FrameParser {
  constructor (onFrame, onViolation) {
    this.onFrame = onFrame;
    this.onViolation = onViolation;
    // permessage-deflate agreed: RSV1 may start a data message.
    this.allowRsv1 = false;
    this.head = Buffer.alloc(0);
    this.need = 0; // payload bytes still missing of the current frame
    this.cur = null;
    this.dead = false;
  }

  push (chunk) {
    let off = 0;
    while (!this.dead && off < chunk.length) {
      if (this.cur === null) {
        const take = Math.min(14 - this.head.length, chunk.length - off);
        this.head = Buffer.concat([this.head, chunk.subarray(off, off + take)]);
        const used = this.tryHeader();
        if (used < 0) {
          off += take;
          continue;
        }
        // tryHeader consumed `used` bytes of this.head; give the rest back.
        off += take - (this.head.length - used);
        this.head = Buffer.alloc(0);
        if (this.need === 0) this.finishFrame();
      } else {
        const take = Math.min(this.need, chunk.length - off);
        this.cur.chunks.push(chunk.subarray(off, off + take));
        this.need -= take;
        off += take;
        if (this.need === 0) this.finishFrame();
      }
    }
  }

  // Returns the header length once the whole header is there, else -1.
  tryHeader () {
    const h = this.head;
    if (h.length < 2) return -1;
    const masked = (h[1] & 0x80) !== 0;
    let len = h[1] & 0x7f;
    let pos = 2;
    if (len === 126) {
      if (h.length < 4) return -1;
      len = h.readUInt16BE(2);
      pos = 4;
    } else if (len === 127) {
      if (h.length < 10) return -1;
      const big = h.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
        this.violation('server announced a frame of ' + big + ' bytes');
        return -1;
      }
      len = Number(big);
      pos = 10;
    }
    if (masked) {
      this.violation('server sent a masked frame (RFC 6455 5.1)');
      return -1;
    }
    const opcode = h[0] & 0x0f;
    const rsv = (h[0] >> 4) & 7;
    const fin = (h[0] & 0x80) !== 0;
    if (rsv !== 0 && !(this.allowRsv1 && rsv === 4 && (opcode === 1 || opcode === 2))) {
      this.violation('server frame has RSV bits ' + rsv + ' on opcode ' + opcode);
    }
    if (![0, 1, 2, 8, 9, 10].includes(opcode)) {
      this.violation('server frame has reserved opcode ' + opcode);
    }
    if (opcode >= 8 && (!fin || len > 125)) {
      this.violation('server sent a fragmented or oversized control frame');
    }
    this.cur = { opcode, fin, rsv, len, chunks: [] };
    this.need = len;
    return pos;
  }

  finishFrame () {
    const f = this.cur;
    this.cur = null;
    f.payload = f.chunks.length === 1 ? f.chunks[0] : Buffer.concat(f.chunks);
    delete f.chunks;
    this.onFrame(f);
  }

  violation (text) {
    this.dead = true;
    this.onViolation(text);
  }
}

/**
 * One connection to the server under test.  `events` lists what happened,
 * in order: {type: 'message'|'pong'|'ping'|'close'|'end'|'reset'|
 * 'error'|'violation'|'closed', t, ...}.  Messages are reassembled from
 * fragments as the RFC defines them.
 */
class Conn {
  constructor (port, seed) {
    this.port = port;
    this.next = rng(seed);
    this.events = [];
    this.waiters = [];
    this.closeSent = false;
    this.writeErrors = 0;
    this.frag = null; // message being reassembled from server fragments
    // permessage-deflate: the offer to send (null: none) and, once agreed,
    // the parameters and both directions' plaintext history (the LZ77
    // window that context takeover keeps).
    this.offer = null;
    this.pmd = null;
    this.t0 = Date.now();
  }

  now () {
    return Date.now() - this.t0;
  }

  record (ev) {
    ev.t = this.now();
    this.events.push(ev);
    for (const w of this.waiters.slice()) w();
  }

  /**
   * Opens the TCP connection and performs the opening handshake.  Bytes in
   * `extra` are written in the same write as the request (a client that
   * pipelines its first frame).
   */
  open (extra, timeoutMs) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const expectAccept = crypto
        .createHash('sha1')
        .update(key + GUID)
        .digest('base64');
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      this.sock = sock;
      sock.setNoDelay(true);
      let head = Buffer.alloc(0);
      let upgraded = false;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('handshake timed out'));
      }, timeoutMs || 3000);
      const parser = new FrameParser(
        (f) => this.onFrame(f),
        (text) => this.record({ type: 'violation', text })
      );
      sock.on('connect', () => {
        const req = Buffer.from(
          'GET /conformance HTTP/1.1\r\n' +
            'Host: 127.0.0.1:' + this.port + '\r\n' +
            'Upgrade: websocket\r\n' +
            'Connection: Upgrade\r\n' +
            'Sec-WebSocket-Key: ' + key + '\r\n' +
            'Sec-WebSocket-Version: 13\r\n' +
            (this.offer ? 'Sec-WebSocket-Extensions: ' + this.offer + '\r\n' : '') +
            '\r\n'
        );
        sock.write(extra ? Buffer.concat([req, extra]) : req);
      });
      sock.on('data', (chunk) => {
        if (upgraded) {
          parser.push(chunk);
          return;
        }
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        const lines = text.split('\r\n');
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        clearTimeout(timer);
        if (!/^HTTP\/1\.1 101 /.test(lines[0]) ||
            headers['sec-websocket-accept'] !== expectAccept ||
            (headers.upgrade || '').toLowerCase() !== 'websocket') {
          sock.destroy();
          reject(new Error('bad handshake answer: ' + lines[0]));
          return;
        }
        const ext = headers['sec-websocket-extensions'];
        if ((ext && !(this.offer && /^permessage-deflate(\s*;|$)/.test(ext))) ||
            headers['sec-websocket-protocol']) {
          sock.destroy();
          reject(new Error('server negotiated something we did not offer: ' + ext));
          return;
        }
        if (ext) {
          this.pmd = parseDeflate(ext);
          parser.allowRsv1 = true;
        }
        upgraded = true;
        resolve();
        const rest = head.subarray(end + 4);
        if (rest.length > 0) parser.push(rest);
      });
      sock.on('end', () => this.record({ type: 'end' }));
      sock.on('error', (err) => {
        clearTimeout(timer);
        if (!upgraded) reject(err);
        if (err.code === 'ECONNRESET') this.record({ type: 'reset' });
        else if (err.code === 'EPIPE') this.writeErrors++;
        else this.record({ type: 'error', text: err.message });
      });
      sock.on('close', () => {
        clearTimeout(timer);
        if (!upgraded) reject(new Error('connection closed during handshake'));
        this.record({ type: 'closed' });
      });
    });
  }

  onFrame (f) {
    if (f.opcode >= 8) {
      const type = { 8: 'close', 9: 'ping', 10: 'pong' }[f.opcode];
      this.record({ type, payload: f.payload });
      return;
    }
    if (f.opcode === 0 && this.frag === null) {
      this.record({ type: 'violation', text: 'server sent a continuation without a message' });
      return;
    }
    if (f.opcode !== 0 && this.frag !== null) {
      this.record({ type: 'violation', text: 'server started a message inside another' });
      return;
    }
    if (f.opcode === 0 && f.rsv !== 0) {
      this.record({ type: 'violation', text: 'server set RSV1 on a continuation frame' });
      return;
    }
    if (f.opcode !== 0) this.frag = { opcode: f.opcode, chunks: [], compressed: f.rsv === 4 };
    this.frag.chunks.push(f.payload);
    if (!f.fin) return;
    const m = this.frag;
    this.frag = null;
    let payload = m.chunks.length === 1 ? m.chunks[0] : Buffer.concat(m.chunks);
    if (m.compressed) {
      try {
        payload = this.inflate(payload);
      } catch (e) {
        this.record({ type: 'violation', text: 'server sent bad compressed data: ' + e.message });
        return;
      }
    }
    this.record({ type: 'message', opcode: m.opcode, payload });
  }

  // RFC 7692 7.2.2: the tail 00 00 ff ff is appended; with context
  // takeover the window holds what the server sent compressed before,
  // which a preset dictionary reproduces exactly.
  inflate (data) {
    const p = this.pmd;
    const dict = p.serverNoContextTakeover ? null : p.rxHistory;
    const out = zlib.inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), {
      windowBits: Math.max(9, p.serverMaxWindowBits),
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      ...(dict && dict.length ? { dictionary: dict } : {})
    });
    p.rxHistory = Buffer.concat([p.rxHistory, out]).subarray(-32768);
    return out;
  }

  /**
   * Frames for one compressed message (RSV1 on the first), in fragments
   * of at most fragSize bytes of compressed data (0: one frame).  With
   * context takeover the client's history is the preset dictionary, so
   * the server's window must still hold it.
   */
  compressedFrames (opcode, payload, fragSize) {
    const p = this.pmd;
    const bits = Math.max(9, p.clientMaxWindowBits);
    const dict = p.clientNoContextTakeover ? null : p.txHistory.subarray(-(1 << bits) + 262);
    let c = zlib.deflateRawSync(payload, {
      windowBits: bits,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      ...(dict && dict.length ? { dictionary: dict } : {})
    });
    c = c.subarray(0, c.length - 4);
    p.txHistory = Buffer.concat([p.txHistory, payload]).subarray(-32768);
    const frames = [];
    const step = fragSize || c.length || 1;
    for (let off = 0; off === 0 || off < c.length; off += step) {
      const first = off === 0;
      const last = off + step >= c.length;
      frames.push(frame(first ? opcode : OP.CONT, c.subarray(off, off + step), { fin: last, rsv: first ? 4 : 0 }));
    }
    return Buffer.concat(frames);
  }

  /**
   * Writes `buf`: whole ('whole'), in chunks of n bytes (a number), or in
   * random chunks of 1..max bytes ({random: max}).  Every `yieldEvery`
   * writes the event loop runs, so the bytes leave in separate segments
   * instead of one big coalesced write.
   */
  async write (buf, chop) {
    if (this.sock.destroyed) {
      this.writeErrors++;
      return;
    }
    if (chop === undefined || chop === 'whole') {
      this.sock.write(buf, (err) => { if (err) this.writeErrors++; });
      return;
    }
    let off = 0;
    let n = 0;
    while (off < buf.length) {
      const size = typeof chop === 'number' ? chop : 1 + this.next(chop.random);
      const part = buf.subarray(off, off + size);
      off += part.length;
      if (this.sock.destroyed) {
        this.writeErrors++;
        return;
      }
      this.sock.write(part, (err) => { if (err) this.writeErrors++; });
      // Short inputs yield after every write, so that the server's reads
      // see the pieces one by one; long ones every 64 writes.
      if (buf.length <= 4096 || ++n % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
      // Keep memory bounded when chopping big messages.
      if (this.sock.writableLength > 4 * 1024 * 1024) await this.drain();
    }
  }

  drain () {
    return new Promise((resolve) => {
      if (this.sock.destroyed || this.sock.writableLength === 0) return resolve();
      const t = setTimeout(resolve, 5000);
      this.sock.once('drain', () => { clearTimeout(t); resolve(); });
    });
  }

  /** Sends a frame; writes of a close frame are remembered. */
  async send (opcode, payload, opts, chop) {
    if (opcode === OP.CLOSE) this.closeSent = true;
    await this.write(frame(opcode, payload, opts), chop);
  }

  /** Waits until pred() is true or ms pass; returns pred(). */
  waitFor (pred, ms) {
    return new Promise((resolve) => {
      if (pred()) return resolve(true);
      let timer = null;
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve(true);
        }
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(pred());
      }, ms);
      this.waiters.push(check);
    });
  }

  has (type) {
    return this.events.some((e) => e.type === type);
  }

  count (types) {
    return this.events.filter((e) => types.includes(e.type)).length;
  }

  /** Whether the server ended the TCP connection (FIN or reset). */
  tcpGone () {
    return this.has('end') || this.has('reset') || this.has('closed');
  }

  destroy () {
    if (this.sock && !this.sock.destroyed) this.sock.destroy();
  }
}

module.exports = { OP, frame, closePayload, Conn, rng, seedOf, sleep };
