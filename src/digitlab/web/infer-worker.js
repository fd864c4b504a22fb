// The inference Web Worker: preprocessing and the ONNX model run here, never on the page's
// main thread. Exposed to the page with Comlink; errors reach the caller as rejected promises.
import * as Comlink from './vendor/comlink.min.mjs';
import * as ort from './vendor/ort.wasm.min.mjs';
import { rgbaToInput, PreprocessError } from './preprocess.js';

ort.env.wasm.wasmPaths = new URL('./vendor/', import.meta.url).href;
ort.env.wasm.numThreads = 1; // a 54k-parameter model: threads would cost more than they save
ort.env.wasm.proxy = false;

let session = null;
let loadedUrl = null;

const api = {
  /** Load (or reload, after an epoch) the model at `url`; resolves to its URL. */
  async load(url) {
    const response = await fetch(url, { cache: 'no-cache' });
    if (!response.ok) throw new Error(`could not fetch the model (${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    loadedUrl = url;
    return url;
  },

  get model() { return loadedUrl; },

  /** RGBA pixels of the drawing -> {digit, confidence, probabilities, input, ms}; empty: {empty: true}. */
  async predict(rgba, width, height) {
    if (!session) throw new Error('no model loaded yet: train one first');
    const t0 = performance.now();
    let input;
    try {
      input = rgbaToInput(rgba, width, height);
    } catch (err) {
      if (err instanceof PreprocessError) return { empty: true, message: err.message };
      throw err;
    }
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 1, 28, 28]) };
    const output = await session.run(feeds);
    const probabilities = Array.from(output[session.outputNames[0]].data);
    let digit = 0;
    for (let i = 1; i < 10; i++) if (probabilities[i] > probabilities[digit]) digit = i;
    return Comlink.transfer(
      { digit, confidence: probabilities[digit], probabilities, input, ms: performance.now() - t0 },
      [input.buffer]);
  },
};

Comlink.expose(api);
