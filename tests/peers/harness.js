'use strict';
/*
 * What the node peer tests (tests/peers/*.js, tests/cluster/*.js) share:
 * PASS and FAIL lines with their counts, checks bounded in time, the
 * example servers started on port 0 and stopped by their PID, and how
 * Chromium is launched.  One test script per process, so the counts are
 * this module's own.
 */

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const TIMEOUT = 10000;
/* The system's browser, never a downloaded one. */
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
  '--no-first-run', '--disable-background-networking'];

let passed = 0;
let failed = 0;

function report (ok, label, detail) {
  if (ok) {
    passed++;
    console.log('PASS ' + label);
  } else {
    failed++;
    console.log('FAIL ' + label + (detail ? ': ' + detail : ''));
  }
}

/* Prints the last line, "N passed, N failed"; returns the exit status. */
function summary () {
  console.log(passed + ' passed, ' + failed + ' failed');
  return failed ? 1 : 0;
}

/* The BUILDDIR argument, or null once the usage was printed (a failed
   run). */
function builddirArg (script) {
  const builddir = process.argv[2];
  if (!builddir) {
    console.log('usage: ' + script + ' BUILDDIR');
    console.log('0 passed, 1 failed');
    return null;
  }
  return builddir;
}

/* Runs the script's async main and exits with what it returns. */
function runMain (main) {
  main().then((rc) => process.exit(rc), (e) => {
    console.log('FAIL internal: ' + e.stack);
    summary();
    process.exit(1);
  });
}

function withTimeout (promise, ms, what) {
  let timer;
  const t = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(what + ' timed out')), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function fail (message) {
  throw new Error(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* Runs one check within 30 s (or @ms); an exception or a string result
   (what is wrong) fails it. */
async function check (label, fn, ms) {
  try {
    const res = await withTimeout(fn(), ms || 30000, label);
    if (res === true || res === undefined)
      report(true, label);
    else
      report(false, label, String(res));
  } catch (e) {
    report(false, label, (e && e.message) ? e.message : String(e));
  }
}

/* Runs one check within 60 s (or @ms), naming the time it took; only an
   exception fails it. */
async function timedCheck (label, fn, ms) {
  const start = Date.now();
  try {
    await withTimeout(fn(), ms || 60000, label);
    report(true, label + ' (' + ((Date.now() - start) / 1000).toFixed(2) +
      ' s)');
  } catch (e) {
    report(false, label, (e && e.message) ? e.message : String(e));
  }
}

/* A peer package (ws, playwright-core), or null once its absence was
   reported as a failed check named @what. */
function need (name, what) {
  try {
    return require(name);
  } catch (e) {
    report(false, what, e.message);
    return null;
  }
}

/* Options for chromium.launch() and launchPersistentContext(), with
   @extra flags and @more options. */
function chromiumOptions (extra, more) {
  return Object.assign({ executablePath: CHROMIUM,
    args: CHROMIUM_ARGS.concat(extra || []), timeout: 30000 }, more || {});
}

/* Servers still running when this process exits for any reason (an
   exception in an event handler included) are killed. */
const liveChildren = new Set();
process.on('exit', () => {
  for (const c of liveChildren)
    c.kill('SIGKILL');
});

/* Starts an example server on port 0 and resolves to { child, port, url }
   once it printed its URL; the caller stops it by its PID. */
function startServer (file, args) {
  return new Promise((resolve, reject) => {
    /* The server's stderr (sanitizer reports included) goes to ours. */
    const child = spawn(file, args,
      { stdio: ['ignore', 'pipe', 'inherit'] });
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    let out = '';
    const bad = (why) => {
      clearTimeout(timer);
      stopServer(child);
      reject(new Error(why));
    };
    const timer = setTimeout(() => bad(file + ' printed no URL'), TIMEOUT);
    child.on('error', (e) => bad(file + ': ' + e.message));
    child.on('exit', (code) => bad(file + ' exited with ' + code));
    const onData = (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0)
        return;
      /* Only the first line counts; what follows (the libmicrohttpd
         version) must not run this again, which would drop the exit
         listeners that stopServer() added since. */
      child.stdout.removeListener('data', onData);
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const m = /^Serving on (https?):\/\/127\.0\.0\.1:(\d+)\/$/.exec(
        out.slice(0, nl));
      if (!m)
        return bad(file + ' printed ' + JSON.stringify(out.slice(0, nl)));
      child.stdout.resume();
      const port = Number(m[2]);
      const tls = m[1] === 'https';
      resolve({ child, port, tls, url: (tls ? 'wss' : 'ws') +
        '://127.0.0.1:' + port + '/' });
    };
    child.stdout.on('data', onData);
  });
}

/* SIGINT, then SIGKILL; resolves to the exit code (null if killed). */
function stopServer (child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      return resolve(child.exitCode);
    const kill = setTimeout(() => child.kill('SIGKILL'), 8000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve(code);
    });
    child.kill('SIGINT');
  });
}

/* A self-signed certificate for 127.0.0.1 in a fresh directory:
   { dir, cert, key, args } with args the echo's --cert and --key. */
function makeCertificate () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peers-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'],
  { stdio: 'ignore' });
  return { dir, cert, key, args: ['--cert', cert, '--key', key] };
}

/* Whether the libmicrohttpd that examples/echo loads is 0.9.x, whose
   relay of an upgraded TLS connection moves 4 bytes at a time whatever
   the pool (examples/common/daemon.c, ex_tls_pool_size): a MiB over
   wss:// takes seconds there.  Asked of tests/interop/example_server.py,
   which calls its MHD_get_version(). */
function slowTlsRelay (builddir) {
  const out = execFileSync('/usr/bin/python3', ['-c',
    'import sys; sys.path.insert(0, sys.argv[1]); ' +
    'import example_server as e; print(e.mhd_version(sys.argv[2]))',
    path.join(__dirname, '..', 'interop'), builddir]).toString().trim();
  return out.startsWith('0.');
}

module.exports = { TIMEOUT, report, summary, builddirArg, runMain,
  withTimeout, fail, sleep, check, timedCheck, need, chromiumOptions,
  liveChildren, startServer, stopServer, makeCertificate, slowTlsRelay };
