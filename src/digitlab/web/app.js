// The page's main thread: it only draws and listens. Training events arrive over a WebSocket
// and are applied at most once per animation frame; recognition runs in a Web Worker.
import { api, decodePixels, drawDigit, el, pct } from './api.js';
import { LiveChart } from './charts.js';
import { DrawingPad } from './draw.js';
import { Recognizer } from './recognizer.js';

const $ = (id) => document.getElementById(id);
const END = new Set(['run.finished', 'run.failed', 'run.cancelled']);

const state = {
  datasets: [], models: [], active: null, run: null, running: false, socket: null,
  epochs: 0, batches: 0, epoch: 0, batch: 0, elapsed: 0, imagesPerS: 0, examplesSeed: 1,
};
// what tests and benchmarks read (no behaviour depends on it)
const probe = window.__digitlab = { events: 0, latencies: [], results: 0, lastResult: null, mode: 'starting' };

// ---- one frame loop for everything that paints ------------------------------------------------
const inbox = [];
let frameQueued = false;
let drawingDirty = false;
let strokeEndedAt = null;

function schedule() {
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
}

function frame() {
  frameQueued = false;
  const events = inbox.splice(0);
  for (const event of events) applyEvent(event);
  if (events.length) renderProgress();
  lossChart.flush();
  accChart.flush();
  if (drawingDirty) { drawingDirty = false; recognise(); }
}

// ---- training --------------------------------------------------------------------------------
const lossChart = new LiveChart($('loss-chart'), {
  title: 'Loss', series: [{ label: 'batch loss', stroke: '#2f6fed' }, { label: 'val loss', stroke: '#d2412f', points: true }],
});
const accChart = new LiveChart($('acc-chart'), {
  title: 'Accuracy', yRange: [0, 1],
  series: [{ label: 'batch accuracy', stroke: '#2f6fed' }, { label: 'val accuracy', stroke: '#1a9a5a', points: true }],
});
probe.chartPoints = () => lossChart.points + accChart.points;

function setStatus(text, kind = '') {
  const node = $('status');
  node.textContent = text;
  node.className = `status ${kind}`;
}

function setRunning(running) {
  state.running = running;
  $('start').disabled = running;
  $('cancel').disabled = !running;
  for (const id of ['dataset', 'epochs', 'batch-size', 'lr', 'mode']) $(id).disabled = running;
}

function applyEvent(e) {
  probe.events++;
  switch (e.type) {
    case 'run.started':
      state.epochs = e.epochs; state.batches = e.batches; state.epoch = 0; state.batch = 0;
      setStatus(`Training ${e.model} on ${e.train_size.toLocaleString()} images (${e.device})…`);
      break;
    case 'batch.end': {
      const x = e.epoch - 1 + e.batch / e.batches;
      lossChart.push(x, [e.loss, null]);
      accChart.push(x, [e.accuracy, null]);
      Object.assign(state, { epoch: e.epoch, batch: e.batch, elapsed: e.elapsed, imagesPerS: e.images_per_s });
      break;
    }
    case 'epoch.end':
      lossChart.push(e.epoch, [null, e.val_loss]);
      accChart.push(e.epoch, [null, e.val_accuracy]);
      Object.assign(state, { epoch: e.epoch, batch: state.batches, elapsed: e.elapsed });
      setStatus(`Training… epoch ${e.epoch}/${e.epochs}: val accuracy ${pct(e.val_accuracy, 2)}, val loss ${e.val_loss.toFixed(4)}`);
      if (e.model) { useModel(e.model, `${state.run}-${e.epoch}`); refreshModelsSoon(); }
      break;
    case 'run.finished':
      setRunning(false);
      setStatus(`Finished in ${e.seconds.toFixed(1)} s: test accuracy ${pct(e.test_accuracy, 2)} (model ${e.model}).`, 'good');
      finishRun(e.model);
      break;
    case 'run.cancelled':
      setRunning(false);
      setStatus(e.epochs_done
        ? `Cancelled after ${e.epochs_done} epoch${e.epochs_done > 1 ? 's' : ''}; the model ${e.model} keeps the last finished epoch.`
        : 'Cancelled before the first epoch finished; nothing was saved.', 'warn');
      finishRun(e.model);
      break;
    case 'run.failed':
      setRunning(false);
      setStatus(`Failed: ${e.error}`, 'bad');
      finishRun(e.model);
      break;
    case 'error':
      setStatus(`Error: ${e.error}`, 'bad');
      break;
    default:
  }
}

function finishRun(model) {
  state.socket = null;
  refreshModels().then(() => {
    if (model && state.models.some((m) => m.name === model)) useModel(model, 'final', true);
  });
}

function renderProgress() {
  const total = state.epochs * state.batches;
  const done = (state.epoch - 1) * state.batches + state.batch;
  const fraction = total ? Math.max(0, Math.min(1, (state.epoch === 0 ? 0 : done) / total)) : 0;
  $('progress').value = fraction;
  if (!state.running) { $('progress-text').textContent = fraction >= 1 ? 'done' : 'idle'; return; }
  const eta = fraction > 0 ? state.elapsed / fraction - state.elapsed : NaN;
  $('progress-text').textContent = `epoch ${Math.max(state.epoch, 1)}/${state.epochs} · ${Math.round(100 * fraction)}%`
    + (Number.isFinite(eta) ? ` · ETA ${eta < 60 ? `${eta.toFixed(0)} s` : `${(eta / 60).toFixed(1)} min`}` : '')
    + (state.imagesPerS ? ` · ${Math.round(state.imagesPerS).toLocaleString()} img/s` : '');
}

function attach(runId) {
  if (state.socket) state.socket.close();
  state.run = runId;
  lossChart.reset(); accChart.reset();
  setRunning(true);
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${proto}://${location.host}/api/runs/${runId}/events`);
  state.socket = socket;
  let ended = false;
  socket.onmessage = (msg) => {
    const event = JSON.parse(msg.data);
    if (END.has(event.type) || event.type === 'error') ended = true;
    inbox.push(event);
    schedule();
  };
  socket.onclose = () => {
    if (ended || state.socket !== socket) return;
    setStatus('Lost the connection to the server; reconnecting…', 'warn');
    setTimeout(async () => {
      try {
        const run = await api(`/api/runs/${runId}`);
        if (run.state === 'running') attach(runId);
        else { inbox.push({ type: 'run.failed', error: run.error || run.state }); schedule(); }
      } catch (err) { setStatus(`Lost the server: ${err.message}`, 'bad'); setRunning(false); }
    }, 1000);
  };
}

$('train-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = $('train-form');
  if (!form.reportValidity()) return;
  const mode = $('mode').value;
  const body = {
    dataset: $('dataset').value,
    epochs: Number($('epochs').value),
    batch_size: Number($('batch-size').value),
    learning_rate: Number($('lr').value),
  };
  if (mode !== 'new') body.resume = mode;
  $('start').disabled = true;
  try {
    const { id, model } = await api('/api/runs', { method: 'POST', json: body });
    setStatus(`Starting ${model}…`);
    attach(id);
  } catch (err) {
    setStatus(`Could not start: ${err.message}`, 'bad');
    $('start').disabled = false;
  }
});

$('cancel').addEventListener('click', async () => {
  $('cancel').disabled = true;
  setStatus('Cancelling at the next batch…', 'warn');
  try { await api(`/api/runs/${state.run}/cancel`, { method: 'POST' }); } catch (err) { setStatus(`Cancel failed: ${err.message}`, 'bad'); }
});

// ---- drawing and recognition -----------------------------------------------------------------
const recognizer = new Recognizer({
  onModeChange: (mode, reason) => {
    probe.mode = mode;
    $('recognizer').textContent = mode === 'worker'
      ? `Recognised in your browser (Web Worker, onnxruntime-web) with model ${recognizer.model}.`
      : `Recognising on the server: the in-page worker could not start (${reason}).`;
  },
});
const pad = new DrawingPad($('pad'), {
  onChange: () => {
    $('undo').disabled = pad.empty; $('clear').disabled = pad.empty;
    drawingDirty = true; schedule();
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
    if (!result) return;
    result.strokeEndedAt = endedAt;
    showResult(result);  // a few text and style writes; painted with the next frame
  } catch (err) {
    $('confidence').textContent = `recognition failed: ${err.message}`;
  }
}

function showResult(result) {
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
  probe.results++;
  probe.lastResult = { digit: result.digit, confidence: result.confidence };
  if (result.strokeEndedAt !== null && result.strokeEndedAt === strokeEndedAt) {
    probe.latencies.push(performance.now() - result.strokeEndedAt);
    strokeEndedAt = null;
  }
}

// ---- models ----------------------------------------------------------------------------------
let refreshTimer = null;
function refreshModelsSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshModels, 300);
}

async function refreshModels() {
  try {
    state.models = (await api('/api/models')).models;
  } catch (err) {
    $('model-table').replaceChildren(el('tr', {}, el('td', {}, `Could not list models: ${err.message}`)));
    return;
  }
  renderModels();
  const mode = $('mode');
  const keep = mode.value;
  mode.replaceChildren(el('option', { value: 'new' }, 'new model'),
    ...state.models.map((m) => el('option', { value: m.name }, `continue ${m.name}`)));
  mode.value = state.models.some((m) => m.name === keep) ? keep : 'new';
  if (!state.active && state.models.length) useModel(state.models[0].name, state.models[0].updated, true);
}

function renderModels() {
  const table = $('model-table');
  if (!state.models.length) {
    table.replaceChildren(el('tr', {}, el('td', { class: 'muted' }, 'No saved models yet. Train one above.')));
    return;
  }
  const head = el('tr', {}, ...['use', 'name', 'dataset', 'epochs', 'test accuracy', 'updated', 'download', '']
    .map((h) => el('th', { class: ['epochs', 'test accuracy'].includes(h) ? 'num' : '' }, h)));
  const rows = state.models.map((m) => {
    const q = encodeURIComponent(m.name);
    const radio = el('input', { type: 'radio', name: 'active-model', value: m.name, 'aria-label': `use ${m.name}` });
    radio.checked = m.name === state.active;
    radio.addEventListener('change', () => useModel(m.name, m.updated, true));
    const del = el('button', { type: 'button', class: 'link danger' }, 'delete');
    del.addEventListener('click', () => deleteModel(m.name));
    return el('tr', { class: m.name === state.active ? 'active' : '' },
      el('td', {}, radio), el('td', {}, m.name), el('td', {}, m.dataset || ''),
      el('td', { class: 'num' }, String(m.epochs ?? '')), el('td', { class: 'num' }, pct(m.test_accuracy, 2)),
      el('td', {}, new Date(m.updated * 1000).toLocaleString()),
      el('td', {}, el('a', { href: `/api/models/${q}/model.onnx`, download: `${m.name}.onnx` }, 'ONNX'), ' · ',
        el('a', { href: `/api/models/${q}/model.safetensors`, download: `${m.name}.safetensors` }, 'safetensors')),
      el('td', {}, del));
  });
  table.replaceChildren(head, ...rows);
}

async function deleteModel(name) {
  if (!window.confirm(`Delete model ${name}? This cannot be undone.`)) return;
  try {
    await api(`/api/models/${encodeURIComponent(name)}`, { method: 'DELETE' });
    if (state.active === name) { state.active = null; recognizer.model = null; }
    await refreshModels();
  } catch (err) {
    setStatus(`Could not delete ${name}: ${err.message}`, 'bad');
  }
}

async function useModel(name, version, evaluate = false) {
  const changed = state.active !== name;
  state.active = name;
  renderModels();
  await recognizer.setModel(name, String(version));
  if (!pad.empty) { drawingDirty = true; schedule(); }
  if (changed) loadSummary(name);
  if (evaluate) loadEvaluation(name);
}

async function loadSummary(name) {
  try {
    const s = name ? await api(`/api/models/${encodeURIComponent(name)}/summary`) : await api('/api/architectures/blog-cnn/summary');
    const head = el('tr', {}, el('th', {}, 'Layer (type)'), el('th', {}, 'Output shape'), el('th', { class: 'num' }, 'Param #'));
    const rows = s.layers.map((l) => el('tr', {}, el('td', {}, `${l.name} (${l.type})`),
      el('td', {}, `[${l.output_shape.map((d) => (d === null ? 'null' : d)).join(', ')}]`),
      el('td', { class: 'num' }, l.params.toLocaleString())));
    const total = el('tr', {}, el('th', {}, 'Total'), el('th', {}), el('th', { class: 'num' }, s.total_params.toLocaleString()));
    $('summary').replaceChildren(head, ...rows, total);
  } catch (err) {
    $('summary').replaceChildren(el('tr', {}, el('td', {}, `summary unavailable: ${err.message}`)));
  }
}

// ---- evaluation ------------------------------------------------------------------------------
async function loadEvaluation(name) {
  $('eval-model').textContent = `· ${name} (loading…)`;
  let report;
  try {
    report = await api(`/api/models/${encodeURIComponent(name)}/evaluation`);
  } catch (err) {
    $('eval-model').textContent = `· ${name}: ${err.message}`;
    return;
  }
  if (state.active !== name) return;
  $('eval-model').textContent = `· ${name} on ${report.dataset} test: ${pct(report.accuracy, 2)} of ${report.count.toLocaleString()}`;
  const max = Math.max(...report.confusion.flatMap((row, i) => row.filter((_, j) => j !== i)), 1);
  const label = (i) => report.classes[i];
  const head = el('tr', {}, el('th', { title: 'rows: true class, columns: predicted' }, 't\\p'),
    ...report.confusion.map((_, j) => el('th', { title: label(j) }, String(j))));
  const rows = report.confusion.map((row, i) => el('tr', {}, el('th', { title: label(i) }, String(i)), ...row.map((v, j) => {
    const cell = el('td', { title: `true ${label(i)}, predicted ${label(j)}: ${v}` }, String(v));
    if (i === j) cell.style.background = `rgba(26,154,90,${0.15 + 0.5 * report.per_class_accuracy[i]})`;
    else if (v) cell.style.background = `rgba(210,65,47,${0.1 + 0.7 * v / max})`;
    return cell;
  })));
  $('confusion').replaceChildren(head, ...rows);
  $('per-class').replaceChildren(...report.per_class_accuracy.map((a, i) => {
    const fill = el('div', { class: 'fill' });
    fill.style.width = `${(100 * a).toFixed(1)}%`;
    return el('div', { class: 'bar' }, el('span', {}, label(i)), el('div', { class: 'track' }, fill),
      el('span', {}, pct(a)));
  }));
  $('misclassified').replaceChildren(...(report.misclassified.length ? report.misclassified.map((m) => el('div', { class: 'example' },
    drawDigit(el('canvas'), decodePixels(m.pixels)),
    el('span', { title: 'true class' }, label(m.label)),
    el('span', { class: 'wrong', title: 'what the model said' }, `said ${label(m.predicted)}`))) : [el('p', { class: 'muted' }, 'None: every test image is right.')]));
}

// ---- data ------------------------------------------------------------------------------------
async function loadDatasets() {
  state.datasets = (await api('/api/datasets')).datasets;
  const select = $('dataset');
  select.replaceChildren(...state.datasets.map((d) => el('option', { value: d.name, disabled: !d.available },
    d.available ? `${d.name} (${d.train.toLocaleString()} train)` : `${d.name} (not downloaded)`)));
  const def = state.datasets.find((d) => d.default) || state.datasets[0];
  select.value = def.name;
  showDataset();
}

async function showDataset() {
  const d = state.datasets.find((x) => x.name === $('dataset').value);
  if (!d || !d.available) return;
  $('data-info').textContent = `${d.name}: ${d.train.toLocaleString()} training and ${d.test.toLocaleString()} test images, `
    + `${d.image_shape.join('×')} pixels. Class balance (train):`;
  const counts = d.train_counts;
  const max = Math.max(...counts);
  $('balance').replaceChildren(...counts.map((c, i) => {
    const col = el('div', { class: 'col', title: `${d.classes[i]}: ${c.toLocaleString()}` }, el('span', {}, d.classes[i].slice(0, 3)));
    col.style.height = `${(100 * c / max).toFixed(1)}%`;
    return col;
  }));
  try {
    const ex = await api(`/api/datasets/${encodeURIComponent(d.name)}/examples?split=${$('split').value}&count=24&seed=${state.examplesSeed}`);
    $('examples').replaceChildren(...ex.examples.map((e) => el('div', { class: 'example' },
      drawDigit(el('canvas'), decodePixels(e.pixels)), el('span', {}, ex.classes[e.label]))));
  } catch (err) {
    $('examples').replaceChildren(el('p', { class: 'muted' }, `No examples: ${err.message}`));
  }
}
$('dataset').addEventListener('change', showDataset);
$('split').addEventListener('change', showDataset);
$('shuffle').addEventListener('click', () => { state.examplesSeed++; showDataset(); });

// ---- start-up --------------------------------------------------------------------------------
async function health() {
  const pill = $('connection');
  try {
    const h = await api('/api/health');
    pill.textContent = `connected · v${h.version}`;
    pill.className = 'pill ok';
  } catch {
    pill.textContent = 'server unreachable';
    pill.className = 'pill bad';
  }
}

async function start() {
  await health();
  setInterval(health, 5000);
  try { await loadDatasets(); } catch (err) { setStatus(`Could not load datasets: ${err.message}`, 'bad'); }
  await refreshModels();
  if (!state.active) loadSummary(null);
  try {
    const { runs, active } = await api('/api/runs');
    if (active) attach(active);
    else if (runs.length) {
      const last = runs[0];
      const kind = { finished: 'good', failed: 'bad', interrupted: 'bad', cancelled: 'warn' }[last.state] || '';
      setStatus(`Last run (${last.model}): ${last.state}${last.error ? `: ${last.error}` : ''}`
        + (last.test_accuracy != null ? `, test accuracy ${pct(last.test_accuracy, 2)}` : ''), kind);
    }
  } catch (err) { setStatus(`Could not read the run history: ${err.message}`, 'bad'); }
  probe.ready = true;
}
start();
