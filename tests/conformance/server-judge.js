'use strict';
// Runs one conformance case against a server and judges it strictly:
//   OK          exactly the expected behaviour;
//   NON-STRICT  the right outcome reached in a way the RFC only tolerates
//               (a late failure, a TCP drop instead of a close frame, a
//               reset instead of a clean TCP close, no TCP close at all);
//   FAILED      anything else (wrong bytes, wrong close code, data after
//               a failure or after the close frame, timeouts).

const { OP, closePayload, Conn, seedOf } = require('./raw-client');

// How long the server has for each expected reaction.
const REPLY_MS = 4000;
// After the close handshake, how long the server has to close the TCP
// connection (RFC 6455 7.1.1: the server closes it first).
const TCP_CLOSE_MS = 2000;

const isValidUtf8 = (buf) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch (e) {
    return false;
  }
};

function describe (buf) {
  const head = buf.subarray(0, 16).toString('hex');
  return buf.length + ' bytes [' + head + (buf.length > 16 ? '...' : '') + ']';
}

function sameData (got, want) {
  if (got.type !== want.type) {
    return 'expected a ' + want.type + ', got a ' + got.type;
  }
  if (want.type === 'message' && got.opcode !== want.opcode) {
    return 'expected opcode ' + want.opcode + ', got ' + got.opcode;
  }
  if (!got.payload.equals(want.payload)) {
    let i = 0;
    while (i < got.payload.length && i < want.payload.length &&
           got.payload[i] === want.payload[i]) i++;
    return want.type + ' payload differs at byte ' + i + ': expected ' +
      describe(want.payload) + ', got ' + describe(got.payload);
  }
  return null;
}

/**
 * The expectation for one server: the case's `expect` with the fields of
 * `expect[server]` (a documented per-server difference) laid over it.
 */
function expectationFor (cs, server) {
  const base = Object.assign({ data: [], outcome: 'close', codes: [1002], fast: false }, cs.expect);
  const over = cs.expect && cs.expect[server];
  delete base.ws;
  delete base.echo;
  return over ? Object.assign(base, over) : base;
}

async function runCase (cs, port, server) {
  const exp = expectationFor(cs, server);
  const c = new Conn(port, seedOf(cs.id));
  c.offer = cs.deflate || null; // groups 12 and 13 offer permessage-deflate
  const reply = cs.replyMs || REPLY_MS;
  let expectedClose = null;
  try {
    try {
      await c.open(cs.extra);
    } catch (e) {
      return { verdict: 'FAILED', why: 'handshake: ' + e.message };
    }
    let runTimer;
    const runResult = await Promise.race([
      Promise.resolve(cs.run(c)).then(() => 'done', (e) => 'error: ' + e.stack),
      new Promise((resolve) => { runTimer = setTimeout(() => resolve('timeout'), cs.timeout || 20000); })
    ]);
    clearTimeout(runTimer);
    if (runResult !== 'done') {
      return { verdict: 'FAILED', why: 'case did not run to its end: ' + runResult };
    }
    const dataTypes = ['message', 'pong', 'ping'];
    const settled = () => c.has('close') || c.tcpGone() || c.has('violation');
    if (exp.outcome === 'close') {
      await c.waitFor(() => c.count(dataTypes) >= exp.data.length || settled(), reply);
      if (c.closeSent) {
        expectedClose = exp.close;
      } else if (!settled()) {
        expectedClose = closePayload(1000);
        await c.send(OP.CLOSE, expectedClose);
      }
      await c.waitFor(settled, reply);
      if (c.has('close')) await c.waitFor(() => c.tcpGone(), TCP_CLOSE_MS);
    } else if (exp.outcome === 'fail') {
      await c.waitFor(settled, reply);
      const cl = c.events.find((e) => e.type === 'close');
      if (cl && !c.tcpGone()) {
        // Complete the closing handshake as a polite client does.
        if (!c.closeSent) {
          await c.send(OP.CLOSE, cl.payload.length >= 2 ? cl.payload.subarray(0, 2) : Buffer.alloc(0));
        }
        await c.waitFor(() => c.tcpGone(), TCP_CLOSE_MS);
      }
    } else {
      // 'drop': the server must end the connection without echoing.
      await c.waitFor(() => c.tcpGone() || c.has('violation'), reply);
    }
    // A short grace period catches frames sent after the close frame.
    await c.waitFor(() => c.has('closed'), 50);
    return judge(c, exp, expectedClose);
  } finally {
    c.destroy();
  }
}

function judge (c, exp, expectedClose) {
  const v = c.events.find((e) => e.type === 'violation');
  if (v) return { verdict: 'FAILED', why: v.text };
  const closeIdx = c.events.findIndex((e) => e.type === 'close');
  const endIdx = c.events.findIndex((e) => ['end', 'reset', 'closed'].includes(e.type));
  const stop = closeIdx >= 0 ? closeIdx : endIdx >= 0 ? endIdx : c.events.length;
  const before = c.events.slice(0, stop).filter((e) => ['message', 'pong', 'ping'].includes(e.type));
  const after = c.events.slice(stop).filter((e) => ['message', 'pong', 'ping'].includes(e.type));
  // Messages keep their order, and so do pongs; a pong may overtake
  // queued messages (RFC 6455 5.5.3: "as soon as is practical"), so the
  // two are compared as separate sequences.
  for (const isMsg of [true, false]) {
    const got = before.filter((e) => (e.type === 'message') === isMsg);
    const want = exp.data.filter((e) => (e.type === 'message') === isMsg);
    for (let i = 0; i < Math.min(got.length, want.length); i++) {
      const diff = sameData(got[i], want[i]);
      if (diff) return { verdict: 'FAILED', why: (isMsg ? 'message #' : 'control frame #') + (i + 1) + ': ' + diff };
    }
  }
  if (before.length < exp.data.length) {
    return { verdict: 'FAILED', why: 'got ' + before.length + ' of ' + exp.data.length + ' expected echoes/pongs' };
  }
  if (before.length > exp.data.length) {
    const extra = before[exp.data.length];
    return { verdict: 'FAILED', why: 'unexpected ' + extra.type + ' ' + describe(extra.payload) };
  }
  if (after.length > 0) {
    return { verdict: 'FAILED', why: 'server sent a ' + after[0].type + ' after its close frame' };
  }
  const closes = c.events.filter((e) => e.type === 'close');
  if (closes.length > 1) return { verdict: 'FAILED', why: 'server sent more than one close frame' };
  const cl = closes[0];
  const tcp = c.events.find((e) => ['end', 'reset'].includes(e.type));
  // How the server ended TCP after the close frames crossed.
  const tcpVerdict = () => {
    if (!tcp) return { verdict: 'NON-STRICT', why: 'server did not close the TCP connection within ' + TCP_CLOSE_MS + ' ms of the close handshake' };
    if (tcp.type === 'reset') return { verdict: 'NON-STRICT', why: 'TCP connection reset instead of closed' };
    return null;
  };

  if (exp.outcome === 'close') {
    if (!cl) {
      if (c.tcpGone()) return { verdict: 'NON-STRICT', why: 'TCP closed without answering our close frame' };
      return { verdict: 'FAILED', why: 'no close frame within ' + REPLY_MS + ' ms' };
    }
    if (expectedClose === null || expectedClose === undefined) {
      return { verdict: 'FAILED', why: 'server closed (' + describe(cl.payload) + ') although no close or failure was due' };
    }
    if (!cl.payload.equals(expectedClose)) {
      return { verdict: 'FAILED', why: 'close answer ' + describe(cl.payload) + ', expected ' + describe(expectedClose) };
    }
    return tcpVerdict() || { verdict: 'OK' };
  }

  if (exp.outcome === 'fail') {
    if (!cl) {
      if (c.tcpGone()) return { verdict: 'NON-STRICT', why: 'TCP dropped without a close frame' };
      return { verdict: 'FAILED', why: 'connection not failed within ' + REPLY_MS + ' ms' };
    }
    if (cl.payload.length < 2) {
      return { verdict: 'FAILED', why: 'close frame without a code, expected ' + exp.codes.join('/') };
    }
    const code = cl.payload.readUInt16BE(0);
    if (!exp.codes.includes(code)) {
      return { verdict: 'FAILED', why: 'close code ' + code + ', expected ' + exp.codes.join('/') };
    }
    if (!isValidUtf8(cl.payload.subarray(2))) {
      return { verdict: 'FAILED', why: 'close reason is not UTF-8' };
    }
    if (exp.fast) {
      if (c.restAt === undefined) return { verdict: 'FAILED', why: 'case marked fail-fast but never marked the rest' };
      if (cl.t > c.restAt) {
        return { verdict: 'NON-STRICT', why: 'failed only after the rest of the input arrived (' + code + ')' };
      }
    }
    return tcpVerdict() || { verdict: 'OK' };
  }

  // 'drop'
  if (!c.tcpGone()) return { verdict: 'FAILED', why: 'connection still open after ' + REPLY_MS + ' ms' };
  return { verdict: 'OK' };
}

module.exports = { runCase, expectationFor, REPLY_MS };
