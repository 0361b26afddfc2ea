'use strict';
/*
 * Shared by the cluster tests: starts scripts/run-chat-cluster (Redis,
 * N chatservers with --redis, HAProxy in front, all on ports picked at
 * run time) and reads what it started from its output; restarts Redis on
 * the same port; stops everything by PID.
 */

const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

/* Processes still running when this process exits are killed. */
const live = new Set();
process.on('exit', () => {
  for (const c of live)
    try {
      c.kill('SIGKILL');
    } catch (e) { /* gone */ }
});

function track (child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function onPath (tool) {
  /* As run-chat-cluster looks: haproxy is in /usr/sbin. */
  return spawnSync('sh', ['-c', 'PATH=$PATH:/usr/sbin:/sbin; command -v ' +
    tool], { stdio: 'ignore' }).status === 0;
}

/*
 * What is missing to run the cluster, or null: the Debian packages of
 * scripts/install-deps (and the commands in @tools), and a chatserver
 * built with hiredis.
 */
function missing (builddir, tools) {
  for (const tool of ['redis-server', 'redis-cli', 'haproxy', 'curl'].concat(
    tools || []))
    if (!onPath(tool))
      return tool + ' (scripts/install-deps installs it)';
  const help = spawnSync(path.join(builddir, 'examples', 'chatserver'),
    ['--help'], { encoding: 'utf8' });
  if (help.status !== 0)
    return 'a working examples/chatserver';
  if (/not in this build/.test(help.stdout))
    return 'chatserver --redis (configure found no hiredis)';
  return null;
}

/*
 * Starts the cluster of @n chatservers (@env: more environment, such as
 * CHAT_OPTIONS; @options: the script's options, such as --tls); resolves
 * to { script, url, port, redis: { pid, port }, servers: [{ pid, port,
 * log }], haproxy: { pid, log } } once the script printed the URL to
 * open.  servers[i] is HAProxy's server "chat" + (i + 1).
 */
function start (srcdir, builddir, n, env, options) {
  return new Promise((resolve, reject) => {
    const script = track(spawn(path.join(srcdir, 'scripts',
      'run-chat-cluster'), (options || []).concat([String(n)]), {
      env: Object.assign({}, process.env, { PORT: '0',
        CHATSERVER: path.join(builddir, 'examples', 'chatserver') }, env),
      stdio: ['ignore', 'pipe', 'inherit']
    }));
    const info = { script, servers: [], redis: null, haproxy: null };
    let out = '';
    const timer = setTimeout(() => fail('run-chat-cluster did not start ' +
      'within 60 s; it printed ' + JSON.stringify(out)), 60000);
    function fail (why) {
      clearTimeout(timer);
      script.kill('SIGTERM');
      reject(new Error(why));
    }
    script.on('exit', (code) => fail('run-chat-cluster exited with ' + code +
      ' after printing ' + JSON.stringify(out)));
    script.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        let m;
        if ((m = /^redis-server pid (\d+) on 127\.0\.0\.1:(\d+)$/.exec(line)))
          info.redis = { pid: Number(m[1]), port: Number(m[2]) };
        else if ((m = /^chatserver (\d+) pid (\d+) on http:\/\/127\.0\.0\.1:(\d+)\/ \(log (.*)\)$/.exec(line)))
          info.servers.push({ pid: Number(m[2]), port: Number(m[3]),
            log: m[4] });
        else if ((m = /^haproxy pid (\d+) on .*, log (.*)\)$/.exec(line)))
          info.haproxy = { pid: Number(m[1]), log: m[2] };
        else if ((m = /^Open (https?:\/\/127\.0\.0\.1:(\d+)\/) /.exec(line))) {
          clearTimeout(timer);
          script.removeAllListeners('exit');
          script.stdout.resume();
          info.url = m[1];
          info.port = Number(m[2]);
          if (!info.redis || info.servers.length !== n || !info.haproxy)
            return fail('run-chat-cluster did not name its processes');
          return resolve(info);
        }
      }
    });
  });
}

/* Resolves when process @pid has gone, or rejects after @ms. */
function gone (pid, ms) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    (function poll () {
      try {
        process.kill(pid, 0);
      } catch (e) {
        return resolve();
      }
      if (Date.now() > deadline)
        return reject(new Error('process ' + pid + ' did not end'));
      setTimeout(poll, 20);
    })();
  });
}

/*
 * Starts a new redis-server on @port (after the cluster's was stopped);
 * resolves to the child once it answers PING.
 */
function startRedis (port, dir) {
  const child = track(spawn('redis-server', ['--bind', '127.0.0.1',
    '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir,
    '--daemonize', 'no', '--loglevel', 'warning'],
  { stdio: 'ignore' }));
  const deadline = Date.now() + 10000;
  return new Promise((resolve, reject) => {
    (function poll () {
      const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port),
        'ping'], { encoding: 'utf8' });
      if (r.stdout && r.stdout.trim() === 'PONG')
        return resolve(child);
      if (Date.now() > deadline || child.exitCode !== null)
        return reject(new Error('redis-server did not start on ' + port));
      setTimeout(poll, 50);
    })();
  });
}

/* Stops a child with SIGTERM (SIGKILL after 10 s); resolves to its exit
   status. */
function stop (child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      return resolve(child.exitCode);
    const kill = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.once('exit', (code, sig) => {
      clearTimeout(kill);
      resolve(code !== null ? code : sig);
    });
    child.kill('SIGTERM');
  });
}

function readLog (file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    return '';
  }
}

/* Says that the cluster tests are skipped ("0 passed, 0 failed") and
   why, or returns false when they can run (@tools: more commands they
   need). */
function skipped (builddir, tools) {
  const lack = missing(builddir, tools);
  if (!lack)
    return false;
  console.log('SKIP the cluster tests need ' + lack);
  console.log('0 passed, 0 failed');
  return true;
}

module.exports = { missing, skipped, start, gone, startRedis, stop, readLog };
