'use strict';
/*
 * The node ws server that make bench-scale measures beside ours: one
 * event loop, the ws package pinned in tests/package.json.  /echo echoes
 * every message (text as text, binary as binary); /chat sends every text
 * message to every /chat client, the usual way with ws (one send per
 * client).  Listens on 127.0.0.1:PORT (0 for any free port) and prints
 * "Serving on http://127.0.0.1:PORT/" like the examples.
 *
 * With --cert FILE --key FILE (PEM) it serves https:// and wss://
 * (node's https, OpenSSL) and prints "Serving on https://...".
 *
 * Usage: node tests/bench/ws-scale-server.js [--cert FILE --key FILE] [PORT]
 */

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
let tls = null;
if (args[0] === '--cert' && args[2] === '--key') {
  tls = { cert: fs.readFileSync(args[1]), key: fs.readFileSync(args[3]) };
  args.splice(0, 4);
}
const port = Number(args[0] || 0);
const answer = (req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('WebSocket only\n');
};
const server = tls ? https.createServer(tls, answer)
  : http.createServer(answer);
/* The defaults of ws 8, spelled out: no compression, 100 MiB limit. */
const wss = new WebSocketServer({ server, perMessageDeflate: false });
const members = new Set();

wss.on('connection', (ws, req) => {
  if (req.url.startsWith('/chat')) {
    members.add(ws);
    ws.on('close', () => members.delete(ws));
    ws.on('message', (data, isBinary) => {
      if (isBinary)
        return;
      for (const m of members)
        m.send(data, { binary: false });
    });
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
  ws.on('error', () => {});
});

server.listen(port, '127.0.0.1', () => {
  console.log('Serving on ' + (tls ? 'https' : 'http') + '://127.0.0.1:' +
    server.address().port + '/');
});
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => process.exit(0));
