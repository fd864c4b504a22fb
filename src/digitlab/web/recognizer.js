// Digit recognition for the drawing pad: in a Web Worker (Comlink + onnxruntime-web) when it
// starts, otherwise on the server's predict route, saying so. Only the newest drawing is ever
// waiting: drawings that arrive while one is being recognised replace each other.
import * as Comlink from './vendor/comlink.min.mjs';
import { api, decodePixels } from './api.js';

const WORKER_TIMEOUT_MS = 15000;
// A run saves a new version after every epoch (several a second on the sample); reloading each
// one costs the worker (and the 2 cores it shares) more than a fresher model is worth.
const MIN_RELOAD_INTERVAL_MS = 1000;
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

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
    this.idle = Promise.resolve(); // resolves when no recognition is running or waiting
    this.loading = null; // the model load in progress, if any
    this.lastLoadAt = -Infinity;
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
    if (this.model !== name) this.lastLoadAt = -Infinity; // another model: load it at once
    if (this.loadedKey === key || this.wantedKey === key) return this.loading || Promise.resolve();
    this.model = name;
    this.wantedKey = key;
    if (this.mode !== 'worker') { this.loadedKey = key; return Promise.resolve(); }
    if (!this.loading) this.loading = this.loadNewest().finally(() => { this.loading = null; });
    return this.loading;
  }

  async loadNewest() {
    while (this.mode === 'worker' && this.wantedKey && this.loadedKey !== this.wantedKey) {
      const wait = this.lastLoadAt + MIN_RELOAD_INTERVAL_MS - performance.now();
      if (wait > 0) await sleep(wait); // newer versions arriving meanwhile replace the wanted one
      await this.idle; // recognition first: a stroke's result should not wait for a model reload
      const key = this.wantedKey;
      const [name, version] = [key.slice(0, key.lastIndexOf('@')), key.slice(key.lastIndexOf('@') + 1)];
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
    return new Promise((resolve, reject) => {
      if (this.pending) this.pending.resolve(null);
      this.pending = { imageData, canvas, resolve, reject };
      this.pump();
    });
  }

  async pump() {
    if (this.busy || !this.pending) return;
    const job = this.pending;
    this.pending = null;
    this.busy = true;
    let done;
    this.idle = new Promise((resolve) => { done = resolve; });
    try {
      job.resolve(await this.run(job.imageData, job.canvas));
    } catch (err) {
      job.reject(err);
    } finally {
      this.busy = false;
      if (this.pending) this.pump().then(done); else done();
    }
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
      return { ...result, input: Float32Array.from(bytes, (v) => v / 255) };
    } catch (err) {
      if (err.status === 422 && /nothing drawn/.test(err.message)) return { empty: true, message: err.message };
      throw err;
    }
  }
}
