// Build the blog's CNN in TF.js, train it briefly, save it as `model.save('downloads://NAME')` does
// (NAME.json + NAME.weights.bin, through TF.js's own BrowserDownloads handler with a minimal DOM),
// and predict the test images with it (the test compares digitlab's predictions after import). Also saves, untrained, models that are NOT the blog CNN.
//   node tfjs_train_save.js OUT_DIR DATA_DIR
// DATA_DIR: train_x.f32 (N*784), train_y.u8 (N), test_x.f32 (M*784). Writes OUT_DIR/<variant>/ and
// OUT_DIR/blog/probs.f32 (M*10); prints one JSON line (variants, layers, accuracy, seconds).
'use strict';
const fs = require('fs');
const path = require('path');
const { loadTf, readF32, writeF32, describeLayers } = require('./common');

const tf = loadTf();

/** The blog CNN (as digitlab's blog-cnn), or a variant that differs in one place. */
function build(variant) {
  const m = tf.sequential();
  const conv = (filters, extra = {}) => tf.layers.conv2d({ kernelSize: 3, filters, activation: 'relu', ...extra });
  m.add(conv(8, { inputShape: [28, 28, 1] }));
  m.add(tf.layers.maxPooling2d({ poolSize: [2, 2] }));
  m.add(variant === 'conv32' ? conv(32) : conv(16));
  m.add(tf.layers.maxPooling2d({ poolSize: [2, 2] }));
  m.add(tf.layers.flatten());
  if (variant === 'dropout') m.add(tf.layers.dropout({ rate: 0.25 }));
  m.add(tf.layers.dense({ units: variant === 'dense64' ? 64 : 128, activation: 'relu' }));
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  if (variant === 'extra') m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return m;
}

/** model.save('downloads://NAME') with TF.js's real BrowserDownloads handler; the DOM it touches is
 * reduced to what it uses (createElement('a'), createObjectURL, a click), and the "downloads" land in `dir`. */
async function saveAsDownloads(model, name, dir) {
  const blobs = new Map();
  const clicked = [];
  globalThis.window = { URL: { createObjectURL: (blob) => { const id = `blob:${blobs.size}`; blobs.set(id, blob); return id; } } };
  globalThis.document = { createElement: () => ({ dispatchEvent() { clicked.push([this.download, this.href]); } }) };
  globalThis.MouseEvent = class { constructor(type) { this.type = type; } };
  tf.env().set('IS_BROWSER', true);
  try {
    await model.save(`downloads://${name}`);
  } finally {
    tf.env().set('IS_BROWSER', false);
    delete globalThis.window; delete globalThis.document; delete globalThis.MouseEvent;
  }
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, href] of clicked) {
    fs.writeFileSync(path.join(dir, file), Buffer.from(await blobs.get(href).arrayBuffer()));
  }
  return clicked.map(([file]) => file);
}

async function main() {
  const [outDir, dataDir] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const xs = readF32(path.join(dataDir, 'train_x.f32'));
  const ys = fs.readFileSync(path.join(dataDir, 'train_y.u8'));
  const n = ys.length;
  const x = tf.tensor4d(xs, [n, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(Array.from(ys), 'int32'), 10);
  const model = build('blog');
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const before = model.getWeights().map((w) => w.dataSync().slice());
  const start = Date.now();
  // briefly: the pure-JS CPU backend's conv filter gradient costs ~80 ms an image
  const history = await model.fit(x, y, { epochs: 1, batchSize: 16, shuffle: true, verbose: 0 });
  const trainSeconds = (Date.now() - start) / 1000;
  const changed = model.getWeights().map((w, i) => w.dataSync().some((v, j) => v !== before[i][j]));
  const saved = { blog: await saveAsDownloads(model, 'blog-from-tfjs', path.join(outDir, 'blog')) };
  const tx = readF32(path.join(dataDir, 'test_x.f32'));
  const probs = tf.tidy(() => model.predict(tf.tensor4d(tx, [tx.length / 784, 28, 28, 1])));
  writeF32(path.join(outDir, 'blog', 'probs.f32'), await probs.data());
  for (const variant of ['dense64', 'conv32', 'dropout', 'extra']) {
    saved[variant] = await saveAsDownloads(build(variant), variant, path.join(outDir, variant));
  }
  const acc = history.history.acc || history.history.accuracy;
  console.log(JSON.stringify({
    saved, layers: describeLayers(model), trained: n, loss: history.history.loss, accuracy: acc, trainSeconds,
    weightsChanged: changed,
  }));
}

main().catch((err) => { console.error(`tfjs_train_save: ${err.stack}`); process.exit(1); });
