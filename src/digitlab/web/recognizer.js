// Digit recognition for the drawing pad: in a Web Worker (Comlink + onnxruntime-web) when it
// starts, otherwise on the server's predict route, saying so. Only the newest drawing is ever
// waiting: drawings that arrive while one is being recognised replace each other. The worker does
// one thing at a time, and a drawing to recognise always goes next: what the model sees (see())
// runs in parts of SEE_PART images and stops between two parts for a newer drawing; a new model
// version is loaded only in a pause of drawing (300 ms without a recognition). So while a stroke
// goes on, its result waits for at most one part (~4 ms); a stroke begun during a reload waits
// for that reload, and the first part after a new version also loads the activation graph.
import * as Comlink from './vendor/comlink.min.mjs';
import { api, decodePixels } from './api.js';
import { PATCHES, pictures } from './activation-maps.js';

const WORKER_TIMEOUT_MS = 15000;
// A run saves a new version after every epoch (several a second on the sample); reloading each
// one costs the worker (and the 2 cores it shares) more than a fresher model is worth.
const MIN_RELOAD_INTERVAL_MS = 1000;
// Reloads wait until nothing was asked to be recognised for this long: not in the middle of a
// stroke, nor between two strokes of one digit.
const QUIET_MS = 300;
// The activation view's occlusion batch (1 + 169 images) runs in parts of this many (~4 ms each).
const SEE_BATCH = 1 + PATCHES.length;
const SEE_PART = 43;
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** "name@version" -> [name, version] (model names never hold '@'). */
function splitKey(key) {
  const at = key.lastIndexOf('@');
  return [key.slice(0, at), key.slice(at + 1)];
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

export class Recognizer {
  constructor({ onModeChange } = {}) {
    this.mode = 'starting';
    this.reason = '';
    this.model = null;
    this.onModeChange = onModeChange || (() => {});
    this.busy = false;
    this.pending = null;
    this.seeing = null; // a see() waiting for recognition to finish
    this.idle = Promise.resolve(); // resolves when no recognition is running or waiting
    this.loading = null; // the model load in progress, if any
    this.lastLoadAt = -Infinity;
    this.lastAskedAt = -Infinity; // when a drawing was last given to recognise()
    /** Resolves once the mode is known: the worker answered, or recognition fell back to the server. */
    this.ready = new Promise((resolve) => { this.settle = resolve; });
    try {
      this.worker = new Worker(new URL('./infer-worker.js', import.meta.url), { type: 'module' });
      this.worker.addEventListener('error', (e) => this.fallback(e.message || 'the worker script failed to load'));
      this.remote = Comlink.wrap(this.worker);
      this.mode = 'worker';
      // any answer proves that the worker's modules loaded and it listens
      withTimeout(Promise.resolve(this.remote.model), WORKER_TIMEOUT_MS, 'starting the worker').then(() => {
        if (this.mode !== 'worker') return;
        this.onModeChange(this.mode, '');
        this.settle();
      }, (err) => this.fallback(err.message));
    } catch (err) {
      this.fallback(err.message);
    }
  }

  fallback(reason) {
    if (this.mode === 'server') return;
    this.mode = 'server';
    this.reason = reason;
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.onModeChange(this.mode, reason);
    this.settle();
  }

  /** No model to use (the one in use was deleted): recognition waits for the next setModel. */
  clearModel() {
    this.model = null;
    this.loadedKey = null;
    this.wantedKey = null;
  }

  /**
   * Use model `name` (reloaded when `version` changes, e.g. after each epoch). Loads run one at a
   * time and the newest wins: versions that arrive while one loads (a fast run saves several a
   * second) are skipped, and a drawing waiting to be recognised goes first.
   */
  setModel(name, version = '') {
    const key = `${name}@${version}`;
    if (this.model !== name) this.lastLoadAt = -Infinity; // another model: no once-a-second wait (the pause still applies)
    if (this.loadedKey === key || this.wantedKey === key) return this.loading || Promise.resolve();
    this.model = name;
    this.wantedKey = key;
    if (this.mode !== 'worker') { this.loadedKey = key; return Promise.resolve(); }
    if (!this.loading) this.loading = this.loadNewest().finally(() => { this.loading = null; });
    return this.loading;
  }

  async loadNewest() {
    while (this.mode === 'worker' && this.wantedKey && this.loadedKey !== this.wantedKey) {
      // newer versions arriving meanwhile replace the wanted one
      const wait = Math.max(this.lastLoadAt + MIN_RELOAD_INTERVAL_MS, this.lastAskedAt + QUIET_MS) - performance.now();
      if (wait > 0) { await sleep(wait); continue; }
      await this.idle; // recognition first: a stroke's result should not wait for a model reload
      if (performance.now() - this.lastAskedAt < QUIET_MS) continue; // drawing again
      const key = this.wantedKey;
      const [name, version] = splitKey(key);
      try {
        const url = `/api/models/${encodeURIComponent(name)}/model.onnx?v=${encodeURIComponent(version)}`;
        await withTimeout(this.remote.load(url), WORKER_TIMEOUT_MS, 'loading the model in the worker');
        this.loadedKey = key;
        this.lastLoadAt = performance.now();
        this.onModeChange(this.mode, '');
      } catch (err) {
        this.fallback(err.message);
      }
    }
  }

  /** Recognise `imageData` (from the canvas); resolves with the result, or null if superseded. */
  recognise(imageData, canvas) {
    this.lastAskedAt = performance.now();
    return new Promise((resolve, reject) => {
      if (this.pending) this.pending.resolve(null);
      if (this.seeing) { this.seeing.resolve(null); this.seeing = null; } // it was for an older drawing
      this.pending = { imageData, canvas, resolve, reject };
      this.pump();
    });
  }

  /**
   * What the model sees in the drawing recognised last: its first two convolutions' feature maps
   * and the occlusion saliency, with RGBA pictures of them (activation-maps.js). Runs after any
   * recognition waiting; resolves null if a newer drawing arrives first.
   */
  see(canvas) {
    return new Promise((resolve, reject) => {
      if (this.seeing) this.seeing.resolve(null);
      this.seeing = { canvas, resolve, reject };
      this.pump();
    });
  }

  async pump() {
    if (this.busy || !(this.pending || this.seeing)) return;
    const job = this.pending || this.seeing; // a drawing to recognise goes first
    if (job === this.pending) this.pending = null; else this.seeing = null;
    this.busy = true;
    let done;
    this.idle = new Promise((resolve) => { done = resolve; });
    try {
      job.resolve(await (job.imageData ? this.run(job.imageData, job.canvas) : this.runSee(job.canvas)));
    } catch (err) {
      job.reject(err);
    } finally {
      this.busy = false;
      if (this.pending || this.seeing) this.pump().then(done); else done();
    }
  }

  async runSee(canvas) {
    if (!this.model) throw new Error('no model yet: train one first');
    if (this.mode === 'worker' && this.loadedKey) {
      const [name, version] = splitKey(this.loadedKey);
      const url = `/api/models/${encodeURIComponent(name)}/activations.onnx?v=${encodeURIComponent(version)}`;
      for (let from = 0; from < SEE_BATCH; from += SEE_PART) {
        if (this.pending) return null; // a newer drawing goes first; its result asks for the view again
        const seen = await withTimeout(this.remote.activations(url, from, Math.min(SEE_BATCH, from + SEE_PART)),
          WORKER_TIMEOUT_MS, 'the activation view');
        if (!seen || !seen.partial) return seen;
      }
      return null;
    }
    // on the server: the same numbers as JSON, coloured here (a few thousand values)
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const seen = await api(`/api/models/${encodeURIComponent(this.model)}/activations`, {
      method: 'POST', body: blob, headers: { 'content-type': 'image/png' },
    });
    const dims = (maps) => [maps.length, maps[0].length, maps[0][0].length];
    const raw = {
      conv1: Float32Array.from(seen.conv1.flat(2)), conv1Dims: dims(seen.conv1),
      conv2: Float32Array.from(seen.conv2.flat(2)), conv2Dims: dims(seen.conv2),
      saliency: Float64Array.from(seen.saliency.flat()), input: Float32Array.from(decodePixels(seen.input), (v) => v / 255),
    };
    return { digit: seen.digit, ...raw, pictures: pictures(raw) };
  }

  async run(imageData, canvas) {
    if (!this.model) throw new Error('no model yet: train one first');
    if (this.mode === 'worker') {
      try {
        const { data, width, height } = imageData;
        return await withTimeout(this.remote.predict(Comlink.transfer(data, [data.buffer]), width, height),
          WORKER_TIMEOUT_MS, 'recognition in the worker');
      } catch (err) {
        this.fallback(err.message);
      }
    }
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    try {
      const result = await api(`/api/models/${encodeURIComponent(this.model)}/predict`, {
        method: 'POST', body: blob, headers: { 'content-type': 'image/png' },
      });
      const bytes = decodePixels(result.input);
      return { ...result, runnerUp: result.runner_up, input: Float32Array.from(bytes, (v) => v / 255) };
    } catch (err) {
      if (err.status === 422 && /nothing drawn/.test(err.message)) return { empty: true, message: err.message };
      throw err;
    }
  }
}
