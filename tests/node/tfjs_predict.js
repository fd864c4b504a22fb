// Load a TF.js Layers model with tf.loadLayersModel and predict a batch of 28x28 images.
//   node tfjs_predict.js MODEL IMAGES.f32 PROBS.f32
// MODEL: an http(s) URL of a model.json, or a model.json / its folder (served over local HTTP, so the
// weight paths resolve against model.json's URL as in a page). IMAGES.f32: N*28*28 float32 in [0, 1].
// Writes N*K float32 probabilities; prints one JSON line describing the model as TF.js sees it.
'use strict';
const fs = require('fs');
const path = require('path');
const { loadTf, readF32, writeF32, serveFolder, describeLayers } = require('./common');

async function main() {
  const [model, images, out] = process.argv.slice(2);
  const tf = loadTf();
  await tf.setBackend('cpu');
  let url = model;
  let server = null;
  if (!/^https?:\/\//.test(model)) {
    const json = fs.statSync(model).isDirectory() ? path.join(model, 'model.json') : model;
    server = await serveFolder(path.dirname(path.resolve(json)));
    url = `http://127.0.0.1:${server.address().port}/${encodeURIComponent(path.basename(json))}`;
  }
  try {
    const start = Date.now();
    const m = await tf.loadLayersModel(url);
    const x = readF32(images);
    const n = x.length / 784;
    const probs = tf.tidy(() => m.predict(tf.tensor4d(x, [n, 28, 28, 1])));
    writeF32(out, await probs.data());
    console.log(JSON.stringify({
      layers: describeLayers(m), inputShape: m.inputs[0].shape, outputShape: probs.shape,
      metadata: m.getUserDefinedMetadata() || null, seconds: (Date.now() - start) / 1000,
    }));
  } finally {
    if (server) server.close();
  }
}

main().catch((err) => { console.error(`tfjs_predict: ${err.message}`); process.exit(1); });
