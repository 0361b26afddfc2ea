// Runs openEcho() of browser.js under node against the manual's echo
// server, with the ws package in place of the browser's WebSocket.
// usage: node test_browser.js BROWSER_JS URL
'use strict';
global.WebSocket = require('ws');
const { openEcho } = require(process.argv[2]);

const text = 'h\u00e9llo \u20ac';
let passed = 0;
const timer = setTimeout(() => fail('timed out'), 10000);

function fail(why) {
  console.log('FAIL: ' + why);
  console.log(passed + ' passed, 1 failed');
  process.exit(1);
}

function check(what, ok) {
  if (!ok)
    fail(what);
  console.log('PASS: ' + what);
  passed++;
}

const echo = openEcho(process.argv[3], (kind, data) => {
  if (kind === 'open') {
    echo.send(text);
  } else if (kind === 'text') {
    check('text comes back unchanged', data === text);
    echo.send(new Uint8Array([0, 1, 255]));
  } else if (kind === 'binary') {
    check('binary comes back unchanged',
          data.length === 3 && data[0] === 0 && data[1] === 1 && data[2] === 255);
    echo.close();
  } else if (kind === 'close') {
    check('the server echoes close code 1000', data.startsWith('1000'));
    clearTimeout(timer);
    console.log(passed + ' passed, 0 failed');
  } else {
    fail(kind + ': ' + data);
  }
});
