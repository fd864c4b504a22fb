// The Draw card: the pad, and what the model in use makes of the drawing (digit, confidence,
// ten bars, the 28x28 image it saw). A finished stroke is recognised at once; drawing in
// between is recognised at most once per frame. The latency users feel, from a stroke's end to
// its result on screen, is a User Timing measure named 'draw-to-result'.
// Under the result: "teach it" (confirm the answer or pick the right digit: the drawing is kept,
// see routes/drawings.py) and "What it sees" (activations.js), computed after the result, never
// before it, at most every SEE_DURING_STROKE_MS while a stroke goes on, and not at all when folded.
import { api, drawDigit, el, pct } from './api.js';
import { createActivationView } from './activations.js';
import { DrawingPad } from './draw.js';
import { Recognizer } from './recognizer.js';
import { notify, state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);
const SEE_DURING_STROKE_MS = 200;

/** The model's own "sure" thresholds, fitted with its temperature on held-out data (inference/confidence.py). */
export function isSure(probabilities, top, runnerUp, calibration) {
  if (!calibration || runnerUp === undefined) return true;
  const p = probabilities[top], q = probabilities[runnerUp];
  return p >= calibration.min_probability && p - q >= calibration.min_margin;
}

export function createDrawCard({ requestFrame }) {
  const note = $('recognizer');
  const recognizer = new Recognizer({
    onModeChange: (mode, reason) => {
      if (note.dataset.mode !== mode) note.dataset.mode = mode;
      const text = mode === 'server' ? `Recognising on the server: the in-page worker could not start (${reason}).`
        : recognizer.model ? `Recognised in your browser (Web Worker, onnxruntime-web) with model ${recognizer.model}.` : null;
      if (text !== null && note.textContent !== text) note.textContent = text; // called after every reload: same text, no layout
    },
  });
  let drawingDirty = false;
  let strokeEndedAt = null;
  let loading = Promise.resolve();

  const pad = new DrawingPad($('pad'), {
    onChange: () => {
      $('undo').disabled = pad.empty; $('clear').disabled = pad.empty;
      drawingDirty = true; requestFrame();
      resetTeach();
    },
    // the stroke's end is recognised at once, not at the next frame: that is the latency users feel
    onStrokeEnd: () => { strokeEndedAt = performance.now(); drawingDirty = false; recognise(); },
  });
  $('undo').addEventListener('click', () => pad.undo());
  $('clear').addEventListener('click', () => pad.clear());

  const bars = [];
  let barLabels = null;
  /** One bar per class of the model in use (K from its record's classes; the ten digits by default). */
  function setBars(labels) {
    const key = labels.join('\n');
    if (key === barLabels) return;
    barLabels = key;
    bars.length = 0;
    $('bars').replaceChildren(...labels.map((label) => {
      const fill = el('div', { class: 'fill' });
      const value = el('span', {}, '–');
      const row = el('div', { class: 'bar' }, el('span', {}, label), el('div', { class: 'track' }, fill), value);
      bars.push({ row, fill, value });
      return row;
    }));
    $('bars').classList.toggle('named', labels.some((label) => label.length > 2));
  }
  const classesOf = (name) => ((state.models.find((m) => m.name === name) || {}).classes)
    || Array.from({ length: 10 }, (_, d) => String(d));
  setBars(classesOf(state.active));

  // ---- teach: the answer confirmed or corrected, the drawing kept with its true label ---------
  const teachRow = $('teach');
  const teachNote = el('span', { class: 'teach-note muted small', role: 'status' });
  const rightButton = el('button', { type: 'button', class: 'teach-right' }, '✓ Right');
  const digitButtons = Array.from({ length: 10 }, (_, i) => el('button', {
    type: 'button', class: 'teach-digit', 'aria-label': `it is ${i}`,
  }, String(i)));
  teachRow.append(el('span', { class: 'muted' }, 'Teach it:'), rightButton, el('span', { class: 'muted' }, 'or it is'),
    el('div', { class: 'teach-digits', role: 'group', 'aria-label': 'the right answer' }, ...digitButtons), teachNote);
  let answered = null; // the result the teach row offers to confirm
  let taught = false; // this drawing is kept already: one drawing, one example
  rightButton.addEventListener('click', () => { if (answered) teach(answered.digit); });
  digitButtons.forEach((button, i) => button.addEventListener('click', () => teach(i)));
  teachRow.addEventListener('keydown', (e) => { // keys 0-9 pick the digit while the row has focus
    if (/^[0-9]$/.test(e.key) && !e.repeat && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); teach(Number(e.key)); }
  });

  function setTeachEnabled(enabled) {
    for (const b of [rightButton, ...digitButtons]) b.disabled = !enabled;
  }

  /** How the model in use names class i: the digit itself, or e.g. "Trouser" (Fashion-MNIST). */
  function className(i) {
    const classes = (state.models.find((m) => m.name === state.active) || {}).classes;
    return classes && classes[i] !== undefined ? classes[i] : String(i);
  }

  function offerTeach(result) {
    answered = result;
    if (taught) return;
    if (classesOf(state.active).length !== 10) { teachRow.hidden = true; return; } // taught drawings are labelled 0-9
    const label = className;
    const rightLabel = `right: it is ${label(result.digit)}`;
    if (rightButton.getAttribute('aria-label') !== rightLabel) rightButton.setAttribute('aria-label', rightLabel);
    digitButtons.forEach((b, i) => {
      if (b.textContent !== label(i)) { b.textContent = label(i); b.setAttribute('aria-label', `it is ${label(i)}`); } // other classes
      b.classList.toggle('predicted', i === result.digit);
    });
    if (teachRow.hidden) teachRow.hidden = false;
  }

  function resetTeach() {
    if (taught) { taught = false; setTeachEnabled(true); teachNote.textContent = ''; delete teachRow.dataset.taught; }
    if (pad.empty) { answered = null; teachRow.hidden = true; }
  }

  async function teach(label) {
    if (!answered || taught || pad.empty) return;
    taught = true;
    const hadFocus = teachRow.contains(document.activeElement);
    setTeachEnabled(false);
    if (hadFocus) $('clear').focus(); // the disabled button would drop it: next, clear and draw again
    teachNote.textContent = 'keeping it…';
    const blob = await new Promise((resolve) => $('pad').toBlob(resolve, 'image/png'));
    const query = `label=${label}${recognizer.model ? `&model=${encodeURIComponent(recognizer.model)}` : ''}`;
    try {
      const d = await api(`/api/drawings?${query}`, { method: 'POST', body: blob, headers: { 'content-type': 'image/png' } });
      if (!taught) return; // the drawing changed meanwhile; it is kept all the same
      teachNote.textContent = `Kept as ${className(d.label)} (drawing ${d.id}${d.heldout ? ', held out to measure fine-tuning' : ''}): see My drawings.`;
      teachRow.dataset.taught = String(d.id);
      notify('drawings', { added: d });
    } catch (err) {
      taught = false;
      setTeachEnabled(true);
      teachNote.textContent = `Could not keep it: ${err.message}`;
    }
  }

  // ---- what it sees: activations after each result, painted in the next frame --------------
  const view = createActivationView($('sees'));
  let seeAskedAt = -Infinity;

  function requestSee() {
    if (!view.open || pad.empty || !recognizer.model) return;
    const now = performance.now();
    if (pad.current && now - seeAskedAt < SEE_DURING_STROKE_MS) return; // the stroke's end asks again
    seeAskedAt = now;
    recognizer.see($('pad')).then((seen) => {
      if (!seen || pad.empty || !view.open) return; // folded meanwhile: unfolding asks again
      view.show(seen);
      requestFrame();
    }, (err) => { view.fail(err.message); requestFrame(); });
  }
  $('sees').addEventListener('toggle', () => { if (answered) requestSee(); });

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
      answered = null;
      teachRow.hidden = true;
      view.clear();
      requestFrame();
      return;
    }
    // digits show as themselves; other datasets' classes (Fashion-MNIST) by name
    const model = state.models.find((m) => m.name === state.active) || {};
    const classes = model.classes;
    const named = classes && classes[result.digit] !== String(result.digit);
    const label = (i) => (classes && classes[i] !== undefined ? classes[i] : String(i));
    $('digit').textContent = named ? classes[result.digit] : String(result.digit);
    $('digit').classList.toggle('named', Boolean(named));
    const sure = isSure(result.probabilities, result.digit, result.runnerUp, model.calibration);
    $('digit').classList.toggle('unsure', !sure);
    $('confidence').textContent = sure ? `${pct(result.confidence)} confident`
      : `not sure: ${label(result.digit)} or ${label(result.runnerUp)}? (${pct(result.confidence)})`;
    $('confidence').dataset.sure = String(sure);
    setBars(result.probabilities.map((_, i) => label(i)));
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
    offerTeach(result);
    // the maps after the frame that shows the result: their computing (worker) and painting then
    // never share a frame, or the cores, with the result's
    requestAnimationFrame(() => setTimeout(requestSee, 0));
  }

  subscribe('active', ({ name, version }) => {
    if (!name) { recognizer.clearModel(); return; }
    setBars(classesOf(name));
    loading = recognizer.setModel(name, version).then(() => {
      if (!pad.empty) { drawingDirty = true; requestFrame(); }
    });
  });

  return {
    frame() {
      if (drawingDirty) { drawingDirty = false; recognise(); }
      view.frame();
    },
    /** Resolves once the recognizer has started (or fallen back to the server) with the model in use loaded. */
    ready: () => Promise.all([recognizer.ready, loading]),
  };
}
