// browser.js -- the browser side of the manual's echo server.
// openEcho() uses nothing but the WebSocket API, so the test suite also
// runs it under node; the rest wires it to browser.html.
'use strict';

// Connects to url and reports every event as show(kind, data).
function openEcho(url, show) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer'; // binary messages as ArrayBuffer
  ws.onopen = () => show('open', url);
  ws.onmessage = (event) => {
    if (typeof event.data === 'string')
      show('text', event.data);
    else
      show('binary', new Uint8Array(event.data));
  };
  ws.onerror = () => show('error', 'connection failed');
  // 1000: normal; 1002, 1007, 1009: the server refused what we sent.
  ws.onclose = (event) => show('close', event.code + ' ' + event.reason);
  return {
    send(data) {
      if (ws.readyState !== WebSocket.OPEN)
        return false;
      ws.send(data); // a string goes as text, a typed array as binary
      return true;
    },
    close() {
      ws.close(1000, 'bye');
    },
  };
}

if (typeof document !== 'undefined') {
  const log = document.getElementById('log');
  const input = document.getElementById('text');
  // browser.html#ws://127.0.0.1:8080/ picks the server.
  const url = location.hash.slice(1) || 'ws://127.0.0.1:8080/';
  const echo = openEcho(url, (kind, data) => {
    const line = document.createElement('div');
    line.textContent = kind + ': ' + data; // never as markup
    log.appendChild(line);
  });
  document.getElementById('form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (input.value !== '' && echo.send(input.value))
      input.value = '';
  });
  document.getElementById('quit').addEventListener('click', () => echo.close());
}

if (typeof module !== 'undefined')
  module.exports = { openEcho };
