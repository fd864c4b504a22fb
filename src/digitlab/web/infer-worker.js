// The inference Web Worker: preprocessing and the ONNX model run here, never on the page's
// main thread. Exposed to the page with Comlink; errors reach the caller as rejected promises.
import * as Comlink from './vendor/comlink.min.mjs';
import * as ort from './vendor/ort.wasm.min.mjs';
import { rgbaToInput, PreprocessError } from './preprocess.js';
import { PATCHES, SIZE, occlusionBatch, pictures, saliency } from './activation-maps.js';

ort.env.wasm.wasmPaths = new URL('./vendor/', import.meta.url).href;
ort.env.wasm.numThreads = 1; // a 54k-parameter model: threads would cost more than they save
ort.env.wasm.proxy = false;

let session = null;
let loadedUrl = null;
let lastInput = null; // the last drawing's model input, for activations()
let seeing = null; // {url, session} or {url, error}: the activation graph of the model in use
let occluded = null; // the occlusion batch being run in parts: {url, input, batch, next, probabilities, ...}
let predicting = 0; // predict() calls under way: a session they run on is released only after them
let retired = []; // sessions replaced by load() while a predict() ran
const BATCH = 1 + PATCHES.length;

const api = {
  /** Load (or reload, after an epoch) the model at `url`; resolves to its URL. */
  async load(url) {
    const response = await fetch(url, { cache: 'no-cache' });
    if (!response.ok) throw new Error(`could not fetch the model (${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const next = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    // a session's first run prepares its kernels (up to tens of ms): done here, during the reload,
    // not in the first drawing's recognition
    await next.run({ [next.inputNames[0]]: new ort.Tensor('float32', new Float32Array(SIZE * SIZE), [1, 1, SIZE, SIZE]) });
    if (session) retired.push(session); // its wasm memory: released now, or when the predict() using it ends
    session = next;
    releaseRetired();
    loadedUrl = url;
    return url;
  },

  get model() { return loadedUrl; },

  /** RGBA pixels of the drawing -> {digit, confidence, runnerUp, probabilities, input, ms}; empty: {empty: true}. */
  async predict(rgba, width, height) {
    const model = session; // load() may swap the session while this one runs
    if (!model) throw new Error('no model loaded yet: train one first');
    predicting += 1;
    try {
      return await recognise(model, rgba, width, height);
    } finally {
      predicting -= 1;
      releaseRetired();
    }
  },

  /**
   * What the model sees in the last drawing predicted: its activation graph (fetched from `url`
   * once per model version) on the occlusion batch of 1 + 169 images. In parts, so that a drawing
   * waiting to be recognised never waits for the whole batch: images [from, to) run now, and the
   * call that completes the batch resolves to {digit, conv1, conv1Dims, conv2, conv2Dims, saliency,
   * input, pictures: {conv1, conv2, saliency} as RGBA, ms}; the others to {partial: true}. Without
   * a range, the whole batch at once. Null before any drawing, or when a part belongs to an older
   * drawing than the last one predicted (its batch is gone).
   */
  async activations(url, from = 0, to = BATCH) {
    if (!lastInput) return null;
    if (from === 0) {
      if (!seeing || seeing.url !== url) {
        const old = seeing;
        seeing = await loadActivations(url);
        if (old && old.session) old.session.release(); // the previous version's
      }
      if (seeing.error) throw new Error(seeing.error);
      occluded = { url, input: lastInput, batch: occlusionBatch(lastInput), next: 0, ms: 0, probabilities: null };
    }
    const job = occluded;
    if (!job || job.input !== lastInput || job.url !== url || job.next !== from || to <= from || to > BATCH) return null;
    const t0 = performance.now();
    const graph = seeing.session;
    const n = to - from;
    const images = job.batch.slice(from * SIZE * SIZE, to * SIZE * SIZE);
    const out = await graph.run({ [graph.inputNames[0]]: new ort.Tensor('float32', images, [n, 1, SIZE, SIZE]) });
    const probabilities = out[graph.outputNames[0]].data;
    const classes = probabilities.length / n;
    if (from === 0) { // the graph's feature maps are its first image's: the drawing itself
      job.probabilities = new Float32Array(BATCH * classes);
      Object.assign(job, { conv1: out.conv1.data, conv1Dims: out.conv1.dims.slice(1), conv2: out.conv2.data, conv2Dims: out.conv2.dims.slice(1) });
    }
    job.probabilities.set(probabilities, from * classes);
    job.next = to;
    job.ms += performance.now() - t0;
    if (to < BATCH) return { partial: true };
    occluded = null;
    let digit = 0;
    for (let i = 1; i < classes; i++) if (job.probabilities[i] > job.probabilities[digit]) digit = i;
    const raw = {
      conv1: job.conv1, conv1Dims: job.conv1Dims, conv2: job.conv2, conv2Dims: job.conv2Dims,
      saliency: saliency(job.probabilities, classes, digit), input: job.input,
    };
    const pics = pictures(raw); // painted by the page as they are: no per-pixel work on its main thread
    return Comlink.transfer({ digit, ...raw, pictures: pics, ms: job.ms },
      [pics.conv1.data.buffer, pics.conv2.data.buffer, pics.saliency.data.buffer]);
  },
};

/** One recognition on `model`: preprocessing, the model, the top two classes. */
async function recognise(model, rgba, width, height) {
  const t0 = performance.now();
  let input;
  try {
    input = rgbaToInput(rgba, width, height);
  } catch (err) {
    if (err instanceof PreprocessError) return { empty: true, message: err.message };
    throw err;
  }
  lastInput = Float32Array.from(input);
  const feeds = { [model.inputNames[0]]: new ort.Tensor('float32', input, [1, 1, 28, 28]) };
  const output = await model.run(feeds);
  const probabilities = Array.from(output[model.outputNames[0]].data);
  let digit = 0;
  for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[digit]) digit = i;
  let runnerUp = digit === 0 ? 1 : 0;
  for (let i = 0; i < probabilities.length; i++) {
    if (i !== digit && probabilities[i] > probabilities[runnerUp]) runnerUp = i;
  }
  return Comlink.transfer(
    { digit, confidence: probabilities[digit], runnerUp, probabilities, input, ms: performance.now() - t0 },
    [input.buffer]);
}

/** Release the sessions load() replaced, once no predict() runs on any of them. */
function releaseRetired() {
  if (predicting) return;
  for (const old of retired) old.release();
  retired = [];
}

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
