'use strict';
/*
 * The chat behind HAProxy over TLS with HTTP/2 (scripts/run-chat-cluster
 * --tls): browsers that speak HTTP/2 open the chat's WebSocket on the
 * connection that loaded the page (RFC 8441, extended CONNECT), HAProxy
 * turns it into an HTTP/1.1 Upgrade toward the chatservers (MHD has no
 * HTTP/2).  Two headless Chromium browsers (separate contexts, so
 * separate connections), alice and bob:
 *
 *  - each page was loaded over h2 (the browser's own record); bob takes
 *    6 s to type his name, longer than HAProxy's request timeout (5 s),
 *    and his connection is still there for the WebSocket (timeout
 *    http-keep-alive);
 *  - HAProxy's log shows, for each browser, the page load and the
 *    WebSocket (status 101) as HTTP/2 on the wire, ALPN h2, on one client
 *    connection (one client port), and the WebSocket relayed to the
 *    server the page names, over HTTP/1.1;
 *  - they land on different chatservers and chat both ways through
 *    Redis;
 *  - alice's server is killed: her page's new WebSocket rides the same
 *    HTTP/2 connection to bob's server, and she chats again.
 *
 * Usage: node tests/cluster/test_cluster_h2.js BUILDDIR
 * (NODE_PATH must reach playwright-core; Chromium is /usr/bin/chromium,
 * which opens WebSockets over HTTP/2 without any switch.)  Skipped, "0
 * passed, 0 failed", when Redis, HAProxy, openssl or a chatserver with
 * --redis is missing.  The last line printed is "N passed, N failed".
 */

const path = require('path');
const cluster = require('./cluster');
const { TIMEOUT, report, summary, builddirArg, runMain, withTimeout, sleep,
  check, need, chromiumOptions } = require('../peers/harness');

/* How long bob's page is idle before he joins: more than HAProxy's
   timeout http-request. */
const IDLE_MS = 6000;

function logLines (page) {
  return page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
}

async function waitForLine (page, pred, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const lines = await logLines(page);
    if (lines.some(pred))
      return lines;
    if (Date.now() > deadline)
      throw new Error(what + ' not shown; log: ' +
        JSON.stringify(lines.slice(-12)));
    await sleep(50);
  }
}

/* The server the page is connected to ("connected to HOST:PORT"). */
async function connectedTo (page) {
  await page.waitForFunction(() => /^connected to \S+:\d+$/.test(
    document.getElementById('state').textContent), null, { timeout: TIMEOUT });
  const m = /^connected to (\S+:(\d+))$/.exec(
    await page.textContent('#state'));
  return { id: m[1], port: Number(m[2]) };
}

async function say (page, text) {
  await page.fill('#text', text, { timeout: TIMEOUT });
  await page.press('#text', 'Enter', { timeout: TIMEOUT });
}

/*
 * One line of HAProxy's log (the log-format of
 * examples/cluster/haproxy.cfg), or null for other lines (its warnings).
 */
function parseLog (line) {
  const m = /^\S+ client=([\d.]+):(\d+) fe=(\S+) fc=(\S+) alpn=(\S+) "(\S+) (\S+) (\S+)" status=(-?\d+) server=(\S+) bc=(\S+)$/.exec(line);
  return m && { line, clientPort: Number(m[2]), fc: m[4], alpn: m[5],
    method: m[6], uri: m[7], version: m[8], status: Number(m[9]),
    server: m[10], bc: m[11] };
}

function readRequests (file) {
  return cluster.readLog(file).split('\n').map(parseLog).filter((r) => r);
}

/*
 * The requests HAProxy logged after the first @from until it logged one
 * that satisfies @pred (it logs a WebSocket as soon as it is upgraded:
 * option logasap); rejects after TIMEOUT.
 */
async function requestsUntil (file, from, pred, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const reqs = readRequests(file).slice(from);
    if (reqs.some(pred))
      return reqs;
    if (Date.now() > deadline)
      throw new Error(what + ' not in HAProxy\'s log; it has ' +
        JSON.stringify(reqs.map((r) => r.line)));
    await sleep(50);
  }
}

/*
 * What is wrong with @reqs, the requests of one browser that loaded the
 * page as @name and joined the chat on @at (a server of @c), or null:
 * the page and the WebSocket came as HTTP/2 on one connection and the
 * WebSocket went to that server as HTTP/1.1.
 */
function judge (c, reqs, name, at) {
  const page = reqs.filter((r) => r.method === 'GET' &&
    (r.uri === c.url || r.uri === '/'));
  const ws = reqs.filter((r) => r.status === 101);
  if (page.length !== 1 || page[0].status !== 200)
    return 'the page load was ' + JSON.stringify(page.map((r) => r.line));
  if (ws.length !== 1)
    return 'WebSocket upgrades: ' + JSON.stringify(ws.map((r) => r.line));
  if (!ws[0].uri.endsWith('/?name=' + name))
    return 'the WebSocket was ' + ws[0].line;
  for (const r of [page[0], ws[0]])
    if (r.fc !== 'HTTP/2' || r.alpn !== 'h2' || r.version !== 'HTTP/2.0')
      return 'not HTTP/2 on the wire: ' + r.line;
  const ports = new Set(reqs.map((r) => r.clientPort));
  if (ports.size !== 1)
    return 'the browser used ' + ports.size + ' connections (client ports ' +
      Array.from(ports).join(' ') + '): ' +
      JSON.stringify(reqs.map((r) => r.line));
  const i = c.servers.findIndex((s) => s.port === at.port);
  if (ws[0].server !== 'chatservers/chat' + (i + 1))
    return 'the page is on ' + at.id + ' (chat' + (i + 1) +
      ') but HAProxy relayed the WebSocket to ' + ws[0].server;
  if (ws[0].bc !== 'HTTP/1')
    return 'the WebSocket reached the server as ' + ws[0].bc;
  return null;
}

async function main () {
  const builddir = builddirArg('test_cluster_h2.js');
  if (!builddir)
    return 1;
  const srcdir = path.resolve(__dirname, '..', '..');
  if (cluster.skipped(builddir, ['openssl']))
    return 0;
  const pwc = need('playwright-core', 'playwright-core is installed');
  if (!pwc)
    return summary();
  const { chromium } = pwc;

  let c = null;
  let browser = null;
  try {
    c = await cluster.start(srcdir, builddir, 2, {}, ['--tls']);
    console.log('cluster: ' + c.url + ', chatservers ' +
      c.servers.map((s) => s.port).join(' ') + ', log ' + c.haproxy.log);
    browser = await chromium.launch(chromiumOptions());
    /* Two contexts: two browsers' worth of connections.  The certificate
       is the script's self-signed one. */
    const users = [];
    for (const name of ['alice', 'bob']) {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true,
        viewport: { width: 640, height: 400 } });
      const page = await ctx.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      users.push({ name, ctx, page, errors, at: null, reqs: null });
    }
    const [alice, bob] = users;

    await check('alice and bob join over https on different servers',
      async () => {
        for (const u of users) {
          /* The requests after this many are this browser's: the two
             join one after the other. */
          const from = readRequests(c.haproxy.log).length;
          await u.page.goto(c.url, { timeout: TIMEOUT });
          if (u === bob)
            await sleep(IDLE_MS);
          await u.page.fill('#name', u.name, { timeout: TIMEOUT });
          await u.page.click('#join', { timeout: TIMEOUT });
          u.at = await connectedTo(u.page);
          u.reqs = await requestsUntil(c.haproxy.log, from,
            (r) => r.status === 101, u.name + '\'s WebSocket');
        }
        /* leastconn: bob's WebSocket goes to the server without one. */
        if (alice.at.port === bob.at.port)
          return 'both on ' + alice.at.id;
        for (const u of users)
          if (!c.servers.some((s) => s.port === u.at.port))
            return u.at.id + ' is not the cluster\'s';
      });
    await check('the browser loaded each page over h2', async () => {
      for (const u of users) {
        const proto = await u.page.evaluate(() =>
          performance.getEntriesByType('navigation')[0].nextHopProtocol);
        if (proto !== 'h2')
          return u.name + '\'s page came over ' + JSON.stringify(proto);
      }
    });
    for (const u of users)
      await check('HAProxy\'s log: ' + u.name + '\'s page and WebSocket ' +
        'came as HTTP/2 on one connection, the WebSocket went to ' +
        u.name + '\'s server as HTTP/1.1', async () => {
        if (!u.reqs)
          return 'no requests';
        const bad = judge(c, u.reqs, u.name, u.at);
        if (bad)
          return bad;
        console.log('  ' + u.name + ': ' + u.reqs.length +
          ' requests on client port ' + u.reqs[0].clientPort);
      });
    await check('alice and bob came on different connections', async () => {
      if (!alice.reqs || !bob.reqs)
        return 'no requests';
      if (alice.reqs[0].clientPort === bob.reqs[0].clientPort)
        return 'both on client port ' + alice.reqs[0].clientPort;
    });
    await check('alice -> bob across servers', async () => {
      await alice.page.bringToFront();
      await say(alice.page, 'hello over h2');
      await waitForLine(bob.page, (l) => l === 'alice:hello over h2',
        'message');
    });
    await check('bob -> alice across servers', async () => {
      await bob.page.bringToFront();
      await say(bob.page, 'hi alice \u2014 gr\u00fc\u00dfe');
      await waitForLine(alice.page,
        (l) => l === 'bob:hi alice \u2014 gr\u00fc\u00dfe', 'message');
    });
    await check('the online list on both pages shows both', async () => {
      for (const u of users) {
        await u.page.waitForFunction(() => {
          const t = document.getElementById('who').textContent;
          return /^2 online: /.test(t) && t.includes('alice') &&
            t.includes('bob');
        }, null, { timeout: TIMEOUT });
      }
    });
    await check('no message was marked as not delivered, no script errors',
      async () => {
        for (const u of users) {
          const bad = (await logLines(u.page)).filter((l) =>
            l.startsWith('Not delivered'));
          if (bad.length || u.errors.length)
            return JSON.stringify(bad.concat(u.errors));
        }
      });
    await check('still one connection per browser after the chat',
      async () => {
        /* The messages rode the WebSocket stream; nothing reconnected. */
        const all = readRequests(c.haproxy.log);
        for (const u of users) {
          const port = u.reqs[0].clientPort;
          const ws = all.filter((r) => r.status === 101 &&
            r.uri.endsWith('/?name=' + u.name));
          if (ws.length !== 1 || ws[0].clientPort !== port)
            return u.name + '\'s WebSockets: ' +
              JSON.stringify(ws.map((r) => r.line));
        }
      });
    await check('alice\'s server is killed: her page reconnects to bob\'s ' +
      'server on the same HTTP/2 connection and chats again', async () => {
      const victim = c.servers.find((s) => s.port === alice.at.port);
      const from = readRequests(c.haproxy.log).length;
      process.kill(victim.pid, 'SIGKILL');
      await cluster.gone(victim.pid, 5000);
      await alice.page.bringToFront();
      await alice.page.waitForFunction((old) => {
        const t = document.getElementById('state').textContent;
        return /^connected to /.test(t) && !t.endsWith(old);
      }, ':' + victim.port, { timeout: TIMEOUT });
      const reqs = await requestsUntil(c.haproxy.log, from,
        (r) => r.status === 101, 'alice\'s second WebSocket');
      const ws = reqs.filter((r) => r.status === 101);
      const i = c.servers.findIndex((s) => s.port === bob.at.port);
      if (ws.length !== 1 || !ws[0].uri.endsWith('/?name=alice') ||
          ws[0].clientPort !== alice.reqs[0].clientPort ||
          ws[0].fc !== 'HTTP/2' || ws[0].server !== 'chatservers/chat' + (i + 1))
        return 'after the kill HAProxy logged ' +
          JSON.stringify(reqs.map((r) => r.line)) + ' (alice was on port ' +
          alice.reqs[0].clientPort + ')';
      await say(alice.page, 'back on h2');
      await waitForLine(bob.page, (l) => l === 'alice:back on h2', 'message');
    });
  } catch (e) {
    report(false, 'setup', e.message);
  } finally {
    if (browser)
      await withTimeout(browser.close(), TIMEOUT, 'browser close')
        .catch(() => {});
    if (c) {
      const code = await cluster.stop(c.script);
      const left = [];
      for (const s of c.servers.concat([c.redis, c.haproxy]))
        try {
          process.kill(s.pid, 0);
          left.push(s.pid);
        } catch (e) { /* stopped */ }
      report(code === 143 && left.length === 0,
        'run-chat-cluster --tls stops everything it started on SIGTERM',
        'exit ' + code + ', still running: ' + left.join(' '));
    }
  }
  return summary();
}

runMain(main);
