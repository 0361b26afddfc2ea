'use strict';
// Reference echo server for the conformance suite, built on the npm `ws`
// package (tests/package.json): the suite proves its own cases against it
// before judging examples/echo.  Settings match examples/echo: 127.0.0.1
// only, permessage-deflate when offered (every message compressed, as
// examples/echo does), messages up to 16 MiB, text echoed as text and
// binary as binary, whole.
//
// Usage: node ws-echo-server.js [PORT]   (0 or nothing: any free port)
// First stdout line: "Serving on http://127.0.0.1:PORT/".

const { WebSocketServer } = require('ws');

const port = process.argv[2] === undefined ? 0 : Number(process.argv[2]);
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 16 * 1024 * 1024,
  perMessageDeflate: { threshold: 0 },
  // Text is validated (the default); said here because the suite needs it.
  skipUTF8Validation: false,
  // ws drops a peer that has more than 60 automatic pongs waiting to be
  // written (flood protection); examples/echo has no such limit, and the
  // suite sends up to 100 pings in one write.
  maxPendingAutoPongs: 0
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary, compress: true });
  });
  // Protocol errors are answered by ws itself with a close frame; the
  // error event only needs a listener so that it does not throw.
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write('Serving on http://127.0.0.1:' + wss.address().port + '/\n');
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
