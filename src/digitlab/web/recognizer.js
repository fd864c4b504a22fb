// Digit recognition for the drawing pad: in a Web Worker (Comlink + onnxruntime-web) when it
// starts, otherwise on the server's predict route, saying so. Only the newest drawing is ever
// waiting: drawings that arrive while one is being recognised replace each other.
import * as Comlink from './vendor/comlink.min.mjs';
import { api, decodePixels } from './api.js';

const WORKER_TIMEOUT_MS = 15000;

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
  }

  /** Use model `name` (reloaded when `version` changes, e.g. after each epoch). */
  async setModel(name, version = '') {
    const key = `${name}@${version}`;
    if (this.loadedKey === key) return;
    this.model = name;
    this.loadedKey = key;
    if (this.mode !== 'worker') return;
    try {
      const url = `/api/models/${encodeURIComponent(name)}/model.onnx?v=${encodeURIComponent(version)}`;
      await withTimeout(this.remote.load(url), WORKER_TIMEOUT_MS, 'loading the model in the worker');
      this.onModeChange(this.mode, '');
    } catch (err) {
      this.fallback(err.message);
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
    try {
      job.resolve(await this.run(job.imageData, job.canvas));
    } catch (err) {
      job.reject(err);
    } finally {
      this.busy = false;
      this.pump();
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
