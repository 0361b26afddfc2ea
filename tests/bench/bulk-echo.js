'use strict';
/*
 * The 1 MiB echo time of make bench-scale: node's ws client sends one
 * 1 MiB binary message at a time to URL and waits for its echo, ROUNDS
 * times (after one unmeasured round), comparing every byte.  Prints
 * "BULK <median ms> <fastest ms>"; exits non-zero when an echo differs
 * or the connection fails.  wss:// certificates are not checked (the
 * benchmark's are self-signed).
 *
 * Usage: node tests/bench/bulk-echo.js URL [ROUNDS]
 */

const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
const rounds = Number(process.argv[3] || 10);
const msg = crypto.randomBytes(1024 * 1024);

function fail (why) {
  console.error('bulk-echo: ' + why);
  process.exit(1);
}

const ws = new WebSocket(url, { rejectUnauthorized: false,
  perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
const times = [];
let start = 0;
const timer = setTimeout(() => fail('no end within 300 s'), 300000);

function next () {
  start = process.hrtime.bigint();
  ws.send(msg, { binary: true });
}

ws.on('open', next);
ws.on('error', (e) => fail(e.message));
ws.on('close', (code) => fail('closed with ' + code));
ws.on('message', (data) => {
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (!Buffer.isBuffer(data) || !msg.equals(data))
    fail('the echo differs');
  if (times.length < rounds + 1)
    times.push(ms);
  if (times.length === rounds + 1) {
    clearTimeout(timer);
    const t = times.slice(1).sort((a, b) => a - b);
    console.log('BULK ' + t[Math.floor(t.length / 2)].toFixed(1) + ' ' +
      t[0].toFixed(1));
    ws.removeAllListeners('close');
    ws.terminate();
    return;
  }
  next();
});
