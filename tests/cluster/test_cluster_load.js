'use strict';
/*
 * 3,000 chat clients spread by HAProxy over three chatserver processes
 * (scripts/run-chat-cluster): every message must reach every member
 * exactly once, none may be refused, the timed messages must leave on
 * schedule, and the delivery latency percentiles and the burst rate are
 * reported.  The servers run with --no-presence (no join and leave
 * events).  The clients are tests/bench/chatload (one epoll loop);
 * CLUSTER_LOAD_ARGS replaces its default options.
 *
 * Usage: node tests/cluster/test_cluster_load.js BUILDDIR
 * Skipped, "0 passed, 0 failed", when Redis, HAProxy or a chatserver with
 * --redis is missing.  The last line printed is "N passed, N failed".
 */

const path = require('path');
const { spawn } = require('child_process');
const cluster = require('./cluster');
const { report, summary, builddirArg, runMain } = require('../peers/harness');

const CLIENTS = 3000;
const SERVERS = 3;

/* Runs chatload; resolves to { code, out }. */
function runLoad (prog, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(prog, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => process.stdout.write(d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

async function main () {
  const builddir = builddirArg('test_cluster_load.js');
  if (!builddir)
    return 1;
  const srcdir = path.resolve(__dirname, '..', '..');
  if (cluster.skipped(builddir))
    return 0;
  const prog = path.join(builddir, 'tests', 'bench', 'chatload');
  const extra = (process.env.CLUSTER_LOAD_ARGS ||
    '-c ' + CLIENTS + ' -m 40 -r 10 -b 30 -t 150').split(/\s+/);
  let c = null;
  try {
    /* Without join and leave events: each of 3,000 joins would reach
       every member (4.5 million events) before the first message. */
    c = await cluster.start(srcdir, builddir, SERVERS,
      { CHAT_OPTIONS: '--no-presence' });
    const res = await runLoad(prog, ['-p', String(c.port)].concat(extra));
    const m = /^RESULT (.*)$/m.exec(res.out);
    if (!m) {
      report(false, 'chatload ran', 'exit ' + res.code + ', no RESULT line');
    } else {
      const r = {};
      for (const kv of m[1].split(' ')) {
        const [k, v] = kv.split('=');
        r[k] = Number(v);
      }
      report(r.failed === 0, r.clients + ' clients connected through HAProxy',
        r.failed + ' failed');
      /* leastconn: each process holds about a third. */
      const spread = [...res.out.matchAll(/^ {2}(\d+) clients on (\S+)$/gm)]
        .map((x) => Number(x[1]));
      const fair = r.clients / SERVERS;
      report(r.servers === SERVERS && spread.length === SERVERS &&
        spread.every((n) => Math.abs(n - fair) <= fair * 0.1),
      'the clients are spread evenly over the ' + SERVERS + ' processes',
      'spread ' + JSON.stringify(spread));
      report(r.missing === 0 && r.duplicates === 0,
        'every message reached every member exactly once (' + r.deliveries +
        ' deliveries)', r.missing + ' missing, ' + r.duplicates +
        ' duplicated');
      report(r.refused === 0, 'no message was refused',
        r.refused + ' refused');
      /* A generator that falls behind its schedule measures itself. */
      report(r.late_ms < 1000, 'chatload sent each timed message within 1 s ' +
        'of its time', 'up to ' + r.late_ms + ' ms late');
      report(res.code === 0, 'chatload is satisfied', 'exit ' + res.code);
      console.log('figures: p50 ' + r.p50_ms + ' ms, p99 ' + r.p99_ms +
        ' ms, burst ' + r.burst_per_s + ' deliveries/s');
    }
    const servers = c.servers;
    const code = await cluster.stop(c.script);
    c = null;
    let left = 0;
    for (const s of servers)
      try {
        process.kill(s.pid, 0);
        left++;
      } catch (e) { /* stopped */ }
    report(code === 143 && left === 0, 'the cluster stops',
      'exit ' + code + ', ' + left + ' chatservers left');
  } catch (e) {
    report(false, 'setup', e.message);
  } finally {
    if (c)
      await cluster.stop(c.script);
  }
  return summary();
}

runMain(main);
