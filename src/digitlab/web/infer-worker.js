// The inference Web Worker: preprocessing and the ONNX model run here, never on the page's
// main thread. Exposed to the page with Comlink; errors reach the caller as rejected promises.
import * as Comlink from './vendor/comlink.min.mjs';
import * as ort from './vendor/ort.wasm.min.mjs';
import { rgbaToInput, PreprocessError } from './preprocess.js';
import { PATCHES, occlusionBatch, pictures, saliency } from './activation-maps.js';

ort.env.wasm.wasmPaths = new URL('./vendor/', import.meta.url).href;
ort.env.wasm.numThreads = 1; // a 54k-parameter model: threads would cost more than they save
ort.env.wasm.proxy = false;

let session = null;
let loadedUrl = null;
let lastInput = null; // the last drawing's model input, for activations()
let seeing = null; // {url, session} or {url, error}: the activation graph of the model in use

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

  /** RGBA pixels of the drawing -> {digit, confidence, runnerUp, probabilities, input, ms}; empty: {empty: true}. */
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
    lastInput = Float32Array.from(input);
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 1, 28, 28]) };
    const output = await session.run(feeds);
    const probabilities = Array.from(output[session.outputNames[0]].data);
    let digit = 0;
    for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[digit]) digit = i;
    let runnerUp = digit === 0 ? 1 : 0;
    for (let i = 0; i < probabilities.length; i++) {
      if (i !== digit && probabilities[i] > probabilities[runnerUp]) runnerUp = i;
    }
    return Comlink.transfer(
      { digit, confidence: probabilities[digit], runnerUp, probabilities, input, ms: performance.now() - t0 },
      [input.buffer]);
  },

  /**
   * What the model sees in the last drawing predicted: its activation graph (fetched from `url`
   * once per model version) on the occlusion batch. Resolves to {digit, conv1, conv1Dims, conv2,
   * conv2Dims, saliency, input, pictures: {conv1, conv2, saliency} as RGBA, ms}, or null before
   * any drawing.
   */
  async activations(url) {
    if (!lastInput) return null;
    if (!seeing || seeing.url !== url) {
      const old = seeing;
      seeing = await loadActivations(url);
      if (old && old.session) old.session.release(); // the previous version's
    }
    if (seeing.error) throw new Error(seeing.error);
    const t0 = performance.now();
    const input = lastInput;
    const graph = seeing.session;
    const n = 1 + PATCHES.length;
    const out = await graph.run({ [graph.inputNames[0]]: new ort.Tensor('float32', occlusionBatch(input), [n, 1, 28, 28]) });
    const probabilities = out[graph.outputNames[0]].data;
    const classes = probabilities.length / n;
    let digit = 0;
    for (let i = 1; i < classes; i++) if (probabilities[i] > probabilities[digit]) digit = i;
    const raw = {
      conv1: out.conv1.data, conv1Dims: out.conv1.dims.slice(1), conv2: out.conv2.data, conv2Dims: out.conv2.dims.slice(1),
      saliency: saliency(probabilities, classes, digit), input,
    };
    const pics = pictures(raw); // painted by the page as they are: no per-pixel work on its main thread
    return Comlink.transfer({ digit, ...raw, pictures: pics, ms: performance.now() - t0 },
      [pics.conv1.data.buffer, pics.conv2.data.buffer, pics.saliency.data.buffer]);
  },
};

/** The activation graph at `url` in its own session; a failure is remembered for that URL (version). */
async function loadActivations(url) {
  try {
    const response = await fetch(url, { cache: 'no-cache' });
    if (!response.ok) {
      let reason = String(response.status);
      try { reason = (await response.json()).error || reason; } catch { /* not JSON */ }
      return { url, error: `no activation graph: ${reason}` };
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { url, session: await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }) };
  } catch (err) {
    return { url, error: `no activation graph: ${err.message}` };
  }
}

Comlink.expose(api);
