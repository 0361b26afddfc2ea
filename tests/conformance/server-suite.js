'use strict';
// Conformance suite for WebSocket echo servers: runs the cases of
// server-cases.js first against the `ws` reference server (ws-echo-server.js, the
// suite's self-check) and then against examples/echo from BUILDDIR.
//
// Usage: node server-suite.js BUILDDIR [--server ws|echo] [--group N[,N]]
//                             [--case ID-PREFIX] [--verbose]
// Needs NODE_PATH to reach the `ws` package (tests/node_modules).
// Prints one line per case and server, per-group totals, and last
// "N passed, N failed" (NON-STRICT counts as failed there); the exit
// status is non-zero on any failure.

const path = require('path');
const { spawn } = require('child_process');
const { cases } = require('./server-cases');
const { runCase } = require('./server-judge');

function usage (msg) {
  if (msg) console.error(msg);
  console.error('usage: node server-suite.js BUILDDIR [--server ws|echo] [--group N[,N]] [--case PREFIX] [--verbose]');
  console.log('0 passed, 1 failed');
  process.exit(2);
}

const args = process.argv.slice(2);
let builddir = null;
let servers = ['ws', 'echo'];
let groups = null;
let prefix = null;
let verbose = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--server') servers = [args[++i]];
  else if (a === '--group') groups = String(args[++i]).split(',').map(Number);
  else if (a === '--case') prefix = args[++i];
  else if (a === '--verbose' || a === '-v') verbose = true;
  else if (a.startsWith('-')) usage('unknown option ' + a);
  else builddir = a;
}
if (!builddir && servers.includes('echo')) usage('BUILDDIR is missing');
if (servers.some((s) => !['ws', 'echo'].includes(s))) usage('unknown server');

const selected = cases.filter((c) =>
  (groups === null || groups.includes(c.group)) &&
  (prefix === null || c.id === prefix || c.id.startsWith(prefix + '.')));

/** Starts a server and reads its port from its first stdout line. */
function startServer (name) {
  const cmd = name === 'ws'
    ? [process.execPath, [path.join(__dirname, 'ws-echo-server.js'), '0']]
    : [path.resolve(builddir, 'examples', 'echo'), ['0']];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd[1], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(name + ' did not print its port within 10 s'));
    }, 10000);
    child.stderr.on('data', (d) => {
      err += d;
      if (err.length > 20000) err = err.slice(-10000);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, sig) => {
      child.exited = { code, sig };
      clearTimeout(timer);
      reject(new Error(name + ' exited early (' + (sig || code) + '): ' + err.trim()));
    });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^Serving on http:\/\/127\.0\.0\.1:(\d+)\/\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({ child, port: Number(m[1]), stderr: () => err });
      }
    });
  });
}

/** Stops a server by its PID: SIGTERM, then SIGKILL after 5 s. */
function stopServer (srv) {
  return new Promise((resolve) => {
    const child = srv.child;
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', (code, sig) => {
      clearTimeout(kill);
      resolve(code === 0 && !sig);
    });
    child.kill('SIGTERM');
  });
}

const running = new Set();
const killAll = () => {
  for (const s of running) {
    try { s.child.kill('SIGKILL'); } catch (e) { /* already gone */ }
  }
};
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(1);
  });
}

async function main () {
  const started = Date.now();
  let passed = 0;
  let failed = 0;
  let lenient = 0;
  for (const name of servers) {
    console.log(`==== server: ${name}${name === 'ws' ? ' (reference, self-check of the suite)' : ''}`);
    let srv;
    try {
      srv = await startServer(name);
    } catch (e) {
      console.log(`FAILED  [${name}] server start: ${e.message}`);
      failed++;
      continue;
    }
    running.add(srv);
    const perGroup = new Map();
    const t0 = Date.now();
    try {
      for (const cs of selected) {
        const t = Date.now();
        let r;
        try {
          r = await runCase(cs, srv.port, name);
        } catch (e) {
          r = { verdict: 'FAILED', why: 'harness: ' + e.stack };
        }
        const g = perGroup.get(cs.group) || { ok: 0, lenient: 0, failed: 0 };
        if (r.verdict === 'OK') {
          g.ok++;
          passed++;
        } else if (r.verdict === 'NON-STRICT') {
          g.lenient++;
          lenient++;
        } else {
          g.failed++;
          failed++;
        }
        perGroup.set(cs.group, g);
        const ms = Date.now() - t;
        if (r.verdict !== 'OK' || verbose) {
          console.log(`${r.verdict.padEnd(10)} [${name}] ${cs.id} ${cs.desc} (${ms} ms)${r.why ? ': ' + r.why : ''}`);
        } else {
          console.log(`OK         [${name}] ${cs.id} ${cs.desc} (${ms} ms)`);
        }
      }
    } finally {
      // The server must have survived every case and stop cleanly.
      const alive = srv.child.exitCode === null && srv.child.signalCode === null;
      const clean = await stopServer(srv);
      running.delete(srv);
      if (alive && clean) {
        passed++;
        console.log(`OK         [${name}] server survived all cases and stopped cleanly`);
      } else {
        failed++;
        console.log(`FAILED     [${name}] server ${alive ? 'did not stop cleanly' : 'died during the run'}: ${srv.stderr().trim().slice(-2000)}`);
      }
    }
    console.log(`---- ${name}: per group (OK / NON-STRICT / FAILED), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const [g, c] of [...perGroup.entries()].sort((a, b) => a[0] - b[0])) {
      console.log(`  group ${String(g).padStart(2)}: ${c.ok} / ${c.lenient} / ${c.failed}`);
    }
  }
  console.log(`${selected.length} cases per server; ${lenient} NON-STRICT; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed + lenient} failed`);
  process.exitCode = failed + lenient > 0 ? 1 : 0;
}

main().catch((e) => {
  console.error(e.stack);
  console.log('0 passed, 1 failed');
  killAll();
  process.exit(1);
});
