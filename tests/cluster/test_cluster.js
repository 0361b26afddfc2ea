'use strict';
/*
 * The chat on three chatserver processes behind HAProxy, fanned out
 * through Redis (scripts/run-chat-cluster), in two headless Chromium
 * pages that users would drive:
 *
 *  - alice and bob land on different processes (the welcome names the
 *    server, and that server's log shows the join) and chat both ways;
 *  - alice's server is killed: her page reconnects through HAProxy to
 *    another one and her messages reach bob again within 5 s; bob sees
 *    her leave (her entry expires) and come back;
 *  - Redis is stopped: a message sent meanwhile is marked as not
 *    delivered on the sender's page and reaches nobody; Redis is started
 *    again on its port: messages flow again within 5 s and the online
 *    list is whole again.
 *
 * Usage: node tests/cluster/test_cluster.js BUILDDIR
 * (NODE_PATH must reach playwright-core; Chromium is /usr/bin/chromium.)
 * Skipped, "0 passed, 0 failed", when Redis, HAProxy or a chatserver with
 * --redis is missing.  The last line printed is "N passed, N failed".
 */

const fs = require('fs');
const os = require('os');
const path = require('path');
const cluster = require('./cluster');
const { TIMEOUT, report, summary, builddirArg, runMain, withTimeout, sleep,
  check, need, chromiumOptions } = require('../peers/harness');

function logLines (page) {
  return page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
}

/* Waits until a line of the page's log satisfies @pred. */
async function waitForLine (page, pred, what, ms) {
  const deadline = Date.now() + (ms || TIMEOUT);
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

/* The server the page is connected to ("connected to HOST:PORT"), or
   null while it is not. */
async function serverOf (page) {
  const s = await page.textContent('#state');
  const m = /^connected to (\S+:(\d+))$/.exec(s);
  return m ? { id: m[1], port: Number(m[2]) } : null;
}

async function waitForServer (page, pred, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await serverOf(page);
    if (s && pred(s))
      return s;
    if (Date.now() > deadline)
      throw new Error('state is ' + JSON.stringify(
        await page.textContent('#state')));
    await sleep(25);
  }
}

async function join (page, url, name) {
  await page.goto(url, { timeout: TIMEOUT });
  await page.fill('#name', name, { timeout: TIMEOUT });
  await page.click('#join', { timeout: TIMEOUT });
  return waitForServer(page, () => true, TIMEOUT);
}

async function say (page, text) {
  await page.fill('#text', text, { timeout: TIMEOUT });
  await page.press('#text', 'Enter', { timeout: TIMEOUT });
}

/*
 * Sends @text from @from every 300 ms until @to shows it, as a user
 * would retry a message marked as not delivered; resolves to the time
 * it arrived.
 */
async function sayUntilSeen (from, to, fromName, text, ms) {
  const deadline = Date.now() + ms;
  for (let i = 1; ; i++) {
    const t = text + ' #' + i;
    await say(from, t);
    const until = Math.min(Date.now() + 300, deadline);
    while (Date.now() < until) {
      const lines = await logLines(to);
      if (lines.includes(fromName + ':' + t))
        return Date.now();
      await sleep(25);
    }
    if (Date.now() >= deadline)
      throw new Error('"' + text + '" did not arrive; log: ' +
        JSON.stringify((await logLines(to)).slice(-8)));
  }
}

async function main () {
  const builddir = builddirArg('test_cluster.js');
  if (!builddir)
    return 1;
  const srcdir = path.resolve(__dirname, '..', '..');
  if (cluster.skipped(builddir))
    return 0;
  const pwc = need('playwright-core', 'playwright-core is installed');
  if (!pwc)
    return summary();
  const { chromium } = pwc;

  let c = null;
  let ctx = null;
  let redis2 = null;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-cluster-'));
  try {
    c = await cluster.start(srcdir, builddir, 3);
    console.log('cluster: ' + c.url + ', redis ' + c.redis.port +
      ', chatservers ' + c.servers.map((s) => s.port).join(' '));
    ctx = await chromium.launchPersistentContext(path.join(profile, 'ud'),
      chromiumOptions(['--disable-component-update', '--disable-sync'],
        { viewport: { width: 640, height: 400 } }));
    const alice = await ctx.newPage();
    const bob = await ctx.newPage();
    const pageErrors = [];
    for (const p of [alice, bob])
      p.on('pageerror', (e) => pageErrors.push(e.message));
    const byPort = (port) => c.servers.find((s) => s.port === port);
    let aliceAt = null;
    let bobAt = null;

    await check('alice and bob join through HAProxy on different servers',
      async () => {
        aliceAt = await join(alice, c.url, 'alice');
        bobAt = await join(bob, c.url, 'bob');
        /* leastconn sends bob elsewhere; should the health checks have
           disagreed, joining again moves him. */
        for (let i = 0; i < 5 && bobAt.port === aliceAt.port; i++) {
          await bob.click('#join', { timeout: TIMEOUT });
          await bob.waitForSelector('#state.off', { timeout: TIMEOUT });
          bobAt = await join(bob, c.url, 'bob');
        }
        if (bobAt.port === aliceAt.port)
          return 'both on ' + aliceAt.id;
        if (!byPort(aliceAt.port) || !byPort(bobAt.port))
          return 'servers ' + aliceAt.id + ', ' + bobAt.id +
            ' are not the cluster\'s';
      });
    await check('each server\'s log shows its member joining', async () => {
      const la = cluster.readLog(byPort(aliceAt.port).log);
      const lb = cluster.readLog(byPort(bobAt.port).log);
      if (!la.includes('alice joined on ' + aliceAt.id))
        return 'alice not in ' + aliceAt.id + '\'s log';
      if (!lb.includes('bob joined on ' + bobAt.id))
        return 'bob not in ' + bobAt.id + '\'s log';
    });
    await check('the online list on both pages shows both', async () => {
      for (const p of [alice, bob]) {
        await p.waitForFunction(() => {
          const t = document.getElementById('who').textContent;
          return /^2 online: /.test(t) && t.includes('alice') &&
            t.includes('bob');
        }, null, { timeout: TIMEOUT });
      }
    });
    await check('alice -> bob across processes', async () => {
      await say(alice, 'hello from alice');
      await waitForLine(bob, (l) => l === 'alice:hello from alice', 'message');
    });
    await check('bob -> alice across processes', async () => {
      await bob.bringToFront();
      await say(bob, 'hi alice \u2014 gr\u00fc\u00dfe');
      await waitForLine(alice,
        (l) => l === 'bob:hi alice \u2014 gr\u00fc\u00dfe', 'message');
    });
    await check('no message was marked as not delivered', async () => {
      for (const p of [alice, bob]) {
        const bad = (await logLines(p)).filter((l) =>
          l.startsWith('Not delivered'));
        if (bad.length)
          return JSON.stringify(bad);
      }
    });

    let killedAt = 0;
    await check('alice\'s server is killed: her page reconnects to another ' +
      'and chats again within 5 s', async () => {
      const victim = byPort(aliceAt.port);
      killedAt = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      await cluster.gone(victim.pid, 5000);
      await alice.bringToFront();
      const now = await waitForServer(alice, (s) => s.port !== victim.port,
        5000);
      const seen = await sayUntilSeen(alice, bob, 'alice', 'back again',
        5000 - (Date.now() - killedAt));
      const took = seen - killedAt;
      const marks = (await logLines(alice)).filter((l) =>
        l.startsWith('Not delivered: back again'));
      console.log('  alice moved to ' + now.id + '; her message reached bob ' +
        took + ' ms after the kill; marked not delivered meanwhile: ' +
        JSON.stringify(marks));
      if (marks.length)
        return 'a message on the new server was marked not delivered ' +
          '(the dead one still counted): ' + JSON.stringify(marks);
      return took <= 5000 || 'took ' + took + ' ms';
    });
    await check('bob sees alice leave (her entry expired) and come back',
      async () => {
        await waitForLine(bob, (l) => /^alice left \(\d+ online\)\.$/.test(l),
          'alice left', 8000);
        await waitForLine(bob, (l) => /^alice joined \(\d+ online\)\.$/.test(l),
          'alice joined');
      });
    await check('bob -> alice after her move', async () => {
      await bob.bringToFront();
      await sayUntilSeen(bob, alice, 'bob', 'welcome back', 5000);
    });

    await check('Redis stops: a message sent meanwhile is marked as not ' +
      'delivered and reaches nobody', async () => {
      process.kill(c.redis.pid, 'SIGKILL');
      await cluster.gone(c.redis.pid, 5000);
      await alice.bringToFront();
      await waitForLine(alice, (l) => l.startsWith('Lost the link'),
        'lost link notice', 5000);
      await say(alice, 'during the outage');
      await waitForLine(alice,
        (l) => l.startsWith('Not delivered: during the outage ('),
        'not-delivered mark', 5000);
      await sleep(500);
      const lines = (await logLines(alice)).concat(await logLines(bob));
      if (lines.some((l) => l.endsWith(':during the outage')))
        return 'it was delivered after all';
    });
    await check('Redis is back: messages flow again within 5 s', async () => {
      redis2 = await cluster.startRedis(c.redis.port, profile);
      const t0 = Date.now();
      const seen = await sayUntilSeen(alice, bob, 'alice', 'after restart',
        5000);
      console.log('  first message through ' + (seen - t0) +
        ' ms after Redis was back');
      await bob.bringToFront();
      await sayUntilSeen(bob, alice, 'bob', 'after restart too',
        5000 - (Date.now() - t0));
    });
    await check('the online list heals after the restart', async () => {
      for (const p of [alice, bob]) {
        await p.waitForFunction(() => {
          const t = document.getElementById('who').textContent;
          return /^2 online: /.test(t) && t.includes('alice') &&
            t.includes('bob');
        }, null, { timeout: 6000 });
      }
    });
    await check('no script errors in the pages', async () =>
      pageErrors.length === 0 || JSON.stringify(pageErrors));
  } catch (e) {
    report(false, 'setup', e.message);
  } finally {
    if (ctx)
      await withTimeout(ctx.close(), TIMEOUT, 'browser close').catch(() => {});
    if (c) {
      const code = await cluster.stop(c.script);
      /* Killed processes are already gone; the rest must be too. */
      let left = [];
      for (const s of c.servers.concat([c.redis]))
        try {
          process.kill(s.pid, 0);
          left.push(s.pid);
        } catch (e) { /* stopped */ }
      report(code === 143 && left.length === 0,
        'run-chat-cluster stops everything it started on SIGTERM',
        'exit ' + code + ', still running: ' + left.join(' '));
    }
    if (redis2)
      await cluster.stop(redis2);
    fs.rmSync(profile, { recursive: true, force: true });
  }
  return summary();
}

runMain(main);
