// Shared by the TF.js interop scripts: load @tensorflow/tfjs (pure-JS CPU backend, as a page without
// WebGL would run it) and read/write the raw little-endian arrays the Python tests exchange.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

function loadTf() {
  const log = console.log; // tfjs prints a hint about tfjs-node on import; keep stdout for our JSON
  console.log = () => {};
  try {
    return require('@tensorflow/tfjs');
  } finally {
    console.log = log;
  }
}

function readF32(file) {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function writeF32(file, typed) {
  fs.writeFileSync(file, Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength));
}

/**
 * Serve the files of one folder (no subfolders, nothing outside it) on 127.0.0.1, so that
 * tf.loadLayersModel fetches model.json and resolves its weight paths exactly as in a browser.
 */
function serveFolder(folder) {
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname).split('/').pop();
    const file = path.join(folder, name);
    if (!name || path.dirname(file) !== path.resolve(folder) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The model's layers as Keras names them: name, class, output shape, activation. */
function describeLayers(model) {
  return model.layers.map((l) => ({
    name: l.name,
    className: l.getClassName(),
    outputShape: l.outputShape,
    activation: l.activation ? l.activation.getClassName() : null,
  }));
}

module.exports = { loadTf, readF32, writeF32, serveFolder, describeLayers };
