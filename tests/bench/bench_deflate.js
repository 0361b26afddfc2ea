'use strict';
/*
 * Compressed echo benchmark (issue 13): chat-like JSON messages through
 * examples/echo and through a node `ws` echo server with perMessageDeflate
 * (tests/conformance/ws-echo-server.js), in the same run, with the same
 * client (ws, perMessageDeflate, every message compressed).  Prints one
 * table: compression ratio of the server's messages, bytes on the wire,
 * and server CPU per message (utime + stime from /proc/PID/stat).  Then
 * the memory a compressed connection costs each server: CONNS clients
 * each echo enough messages to fill both 32 KiB windows (250 of them),
 * and the server's RSS growth is divided by CONNS.
 *
 * Usage: node tests/bench/bench_deflate.js BUILDDIR [MESSAGES [CONNS]]
 * (NODE_PATH must reach ws.)  Servers are started on free ports of
 * 127.0.0.1 and stopped by their PIDs.
 */

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const builddir = process.argv[2];
const N = Number(process.argv[3] || 20000);
const CONNS = Number(process.argv[4] || 200);
const FILL = 250; /* messages per connection: 36 KB, past 32 KiB */
const BATCH = 50;
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.error('bench_deflate: the ws package is missing (npm ci --prefix tests)');
  process.exit(1);
}
if (!builddir) {
  console.error('usage: bench_deflate.js BUILDDIR [MESSAGES]');
  process.exit(2);
}

const TICK_US = 1e6 / 100; /* USER_HZ is 100 on Linux */

function cpuTicks (pid) {
  const f = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); /* fields 14 and 15 */
}

function rssKiB (pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/' + pid + '/status', 'utf8'));
  return Number(m[1]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function start (cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(cmd + ' printed no URL')), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /Serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.resume();
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on('exit', (code) => reject(new Error(cmd + ' exited with ' + code)));
  });
}

function stop (child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.removeAllListeners('exit');
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGINT');
  });
}

/* A deterministic stream of chat messages like the chat example's. */
function messages (n) {
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace'];
  const words = ['hello', 'there', 'how', 'are', 'you', 'doing', 'today', 'the',
    'meeting', 'is', 'at', 'noon', 'see', 'you', 'soon', 'thanks', 'great', 'idea',
    'lunch', 'coffee', 'deploy', 'build', 'passed', 'failed', 'again', 'ok'];
  let x = 12345;
  const r = (k) => { x = (x * 1103515245 + 12345) >>> 0; return (x >>> 8) % k; };
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = 3 + r(15);
    const text = [];
    for (let j = 0; j < len; j++) text.push(words[r(words.length)]);
    out.push(JSON.stringify({ type: 'message', room: 'general', from: users[r(users.length)],
      text: text.join(' '), id: 100000 + i, ts: 1764800000000 + i * 1731 }));
  }
  return out;
}

async function run (name, port, pid, msgs) {
  const ws = new WebSocket('ws://127.0.0.1:' + port + '/', {
    perMessageDeflate: { threshold: 0 }
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  if (!/^permessage-deflate/.test(ws.extensions)) throw new Error(name + ': not agreed');
  const sock = ws._socket;
  let got = 0;
  let waiter = null;
  ws.on('message', (d) => {
    if (d.toString() !== msgs[got]) throw new Error(name + ': echo ' + got + ' differs');
    got++;
    if (waiter && got >= waiter.n) waiter.resolve();
  });
  /* Warm up, then measure. */
  for (let i = 0; i < 200; i++) ws.send(msgs[i % msgs.length], { compress: true });
  await new Promise((resolve) => { waiter = { n: 200, resolve }; if (got >= 200) resolve(); });
  got = 0;
  const payload = msgs.reduce((a, m) => a + Buffer.byteLength(m), 0);
  const read0 = sock.bytesRead;
  const written0 = sock.bytesWritten;
  const cpu0 = cpuTicks(pid);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < msgs.length; i += BATCH) {
    for (let j = i; j < i + BATCH && j < msgs.length; j++) ws.send(msgs[j], { compress: true });
    await new Promise((resolve) => { waiter = { n: Math.min(i + BATCH, msgs.length), resolve }; if (got >= waiter.n) resolve(); });
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuTicks(pid) - cpu0;
  const res = {
    name,
    payload,
    down: sock.bytesRead - read0,
    up: sock.bytesWritten - written0,
    cpuUs: cpu * TICK_US / msgs.length,
    wall
  };
  ws.close(1000);
  await new Promise((resolve) => ws.once('close', resolve));
  return res;
}

/* Opens CONNS compressed connections, fills their windows, and returns
   the server's RSS growth per connection while they are idle. */
async function memoryRun (name, port, pid, msgs) {
  const rss0 = rssKiB(pid);
  const clients = [];
  for (let i = 0; i < CONNS; i++) {
    const ws = new WebSocket('ws://127.0.0.1:' + port + '/', { perMessageDeflate: { threshold: 0 } });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    if (!/^permessage-deflate/.test(ws.extensions)) throw new Error(name + ': not agreed');
    clients.push(ws);
  }
  await Promise.all(clients.map((ws, c) => new Promise((resolve, reject) => {
    let got = 0;
    let sent = 0;
    const next = () => {
      for (const end = Math.min(sent + 25, FILL); sent < end; sent++) {
        ws.send(msgs[(c * FILL + sent) % msgs.length], { compress: true });
      }
    };
    ws.on('message', (d) => {
      if (d.toString() !== msgs[(c * FILL + got) % msgs.length]) return reject(new Error(name + ': echo differs'));
      got++;
      if (got === FILL) resolve();
      else if (got === sent) next();
    });
    next();
  })));
  await sleep(1000);
  const perConn = (rssKiB(pid) - rss0) / CONNS;
  for (const ws of clients) ws.close(1000);
  await Promise.all(clients.map((ws) => new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve(); else ws.once('close', resolve);
  })));
  return perConn;
}

async function main () {
  const msgs = messages(N);
  const echo = await start(path.join(builddir, 'examples', 'echo'), ['0']);
  const node = await start(process.execPath,
    [path.join(__dirname, '..', 'conformance', 'ws-echo-server.js'), '0']);
  const rows = [];
  try {
    /* Alternate to even out the machine's load; best of three each. */
    const best = {};
    for (let round = 0; round < 3; round++) {
      for (const [name, srv] of [['libmicrohttpd_ws echo', echo], ['node ws', node]]) {
        const r = await run(name, srv.port, srv.child.pid, msgs);
        if (!best[name] || r.cpuUs < best[name].cpuUs) best[name] = r;
      }
    }
    rows.push(best['libmicrohttpd_ws echo'], best['node ws']);
    rows[0].memKiB = await memoryRun(rows[0].name, echo.port, echo.child.pid, msgs);
    rows[1].memKiB = await memoryRun(rows[1].name, node.port, node.child.pid, msgs);
  } finally {
    await stop(echo.child);
    await stop(node.child);
  }
  const avg = rows[0].payload / N;
  console.log(`compressed echo: ${N} chat JSON messages (${avg.toFixed(0)} bytes on average), ` +
    'client: ws with perMessageDeflate, every message compressed; best of 3 runs');
  console.log(`memory: server RSS growth per connection with ${CONNS} compressed connections ` +
    `idle after ${FILL} echoes each (both windows full)`);
  console.log('server                   | ratio (wire/payload) | bytes server->client | bytes client->server | server CPU/msg |   wall | RSS/conn');
  for (const r of rows) {
    console.log(`${r.name.padEnd(24)} | ${(r.down / r.payload).toFixed(3).padStart(20)} | ` +
      `${String(r.down).padStart(20)} | ${String(r.up).padStart(20)} | ` +
      `${r.cpuUs.toFixed(2).padStart(11)} us | ${r.wall.toFixed(2).padStart(4)} s | ` +
      `${r.memKiB.toFixed(1).padStart(6)} KiB`);
  }
}

main().catch((e) => {
  console.error('bench_deflate: ' + e.message);
  process.exit(1);
});
