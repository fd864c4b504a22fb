// The Draw card: the pad, and what the model in use makes of the drawing (digit, confidence,
// ten bars, the 28x28 image it saw). A finished stroke is recognised at once; drawing in
// between is recognised at most once per frame. The latency users feel, from a stroke's end to
// its result on screen, is a User Timing measure named 'draw-to-result'.
import { drawDigit, el, pct } from './api.js';
import { DrawingPad } from './draw.js';
import { Recognizer } from './recognizer.js';
import { state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);

export function createDrawCard({ requestFrame }) {
  const note = $('recognizer');
  const recognizer = new Recognizer({
    onModeChange: (mode, reason) => {
      note.dataset.mode = mode;
      if (mode === 'server') note.textContent = `Recognising on the server: the in-page worker could not start (${reason}).`;
      else if (recognizer.model) note.textContent = `Recognised in your browser (Web Worker, onnxruntime-web) with model ${recognizer.model}.`;
    },
  });
  let drawingDirty = false;
  let strokeEndedAt = null;
  let loading = Promise.resolve();

  const pad = new DrawingPad($('pad'), {
    onChange: () => {
      $('undo').disabled = pad.empty; $('clear').disabled = pad.empty;
      drawingDirty = true; requestFrame();
    },
    // the stroke's end is recognised at once, not at the next frame: that is the latency users feel
    onStrokeEnd: () => { strokeEndedAt = performance.now(); drawingDirty = false; recognise(); },
  });
  $('undo').addEventListener('click', () => pad.undo());
  $('clear').addEventListener('click', () => pad.clear());

  const bars = [];
  for (let d = 0; d < 10; d++) {
    const fill = el('div', { class: 'fill' });
    const value = el('span', {}, '–');
    const row = el('div', { class: 'bar' }, el('span', {}, String(d)), el('div', { class: 'track' }, fill), value);
    $('bars').append(row);
    bars.push({ row, fill, value });
  }

  async function recognise() {
    if (pad.empty) { showResult({ empty: true, message: 'draw a digit' }); return; }
    if (!recognizer.model) { $('confidence').textContent = 'no model yet: train one first'; return; }
    const endedAt = strokeEndedAt;
    try {
      const result = await recognizer.recognise(pad.pixels(), $('pad'));
      if (!result) return; // superseded by a newer drawing
      showResult(result, endedAt);
    } catch (err) {
      $('confidence').textContent = `recognition failed: ${err.message}`;
    }
  }

  /** A few text and style writes, painted with the next frame. */
  function showResult(result, endedAt = null) {
    if (result.empty) {
      $('digit').textContent = '?';
      $('confidence').textContent = result.message.startsWith('nothing drawn') ? 'nothing drawn yet' : result.message;
      for (const b of bars) { b.fill.style.width = '0'; b.value.textContent = '–'; b.row.classList.remove('top'); }
      drawDigit($('seen'), new Uint8ClampedArray(784));
      return;
    }
    // digits show as themselves; other datasets' classes (Fashion-MNIST) by name
    const classes = (state.models.find((m) => m.name === state.active) || {}).classes;
    const named = classes && classes[result.digit] !== String(result.digit);
    $('digit').textContent = named ? classes[result.digit] : String(result.digit);
    $('digit').classList.toggle('named', Boolean(named));
    $('confidence').textContent = `${pct(result.confidence)} confident`;
    result.probabilities.forEach((p, i) => {
      bars[i].fill.style.width = `${(100 * p).toFixed(1)}%`;
      bars[i].value.textContent = pct(p);
      bars[i].row.classList.toggle('top', i === result.digit);
    });
    drawDigit($('seen'), Uint8ClampedArray.from(result.input, (v) => Math.round(v * 255)));
    if (endedAt !== null && endedAt === strokeEndedAt) { // the result of the latest stroke, not an older one
      performance.measure('draw-to-result', { start: endedAt, end: performance.now() });
      strokeEndedAt = null;
    }
  }

  subscribe('active', ({ name, version }) => {
    if (!name) { recognizer.clearModel(); return; }
    loading = recognizer.setModel(name, version).then(() => {
      if (!pad.empty) { drawingDirty = true; requestFrame(); }
    });
  });

  return {
    frame() {
      if (drawingDirty) { drawingDirty = false; recognise(); }
    },
    /** Resolves once the recognizer has started (or fallen back to the server) with the model in use loaded. */
    ready: () => Promise.all([recognizer.ready, loading]),
  };
}
