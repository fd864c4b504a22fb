// The Train card: the form (its limits from the server's TrainConfig), start and cancel, the
// run's WebSocket, the progress bar, the live charts and the model summary. Run events are
// queued as they arrive and applied together in the page's animation frame, however fast they
// come (at most APPLY_MS of them a frame: a reloaded page's whole history is spread over a few);
// what they change is shown at most ten times a second (RENDER_MS: reads as live, and a frame's
// cost stays small and constant), at once when a run starts or ends. Only text that changed is written to the DOM. After a reload the last
// run's curves come back: replayed live if it still trains, else read from the history.
import { api, el, pct } from './api.js';
import { LiveChart } from './charts.js';
import { notify, state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);
const END = new Set(['run.finished', 'run.failed', 'run.cancelled']);
// the server's TrainConfig field -> this form's input
const INPUTS = { epochs: 'epochs', batch_size: 'batch-size', learning_rate: 'lr', seed: 'seed' };
const PATHS = { 'fused-kernels': 'fused kernels', 'pytorch-ops': 'PyTorch ops' };
const RENDER_MS = 100;
const APPLY_MS = 6;

export function createTrainCard({ requestFrame }) {
  const inbox = [];
  const run = { id: null, socket: null, epochs: 0, batches: 0, epoch: 0, batch: 0, elapsed: 0, imagesPerS: 0 };
  const lossChart = new LiveChart($('loss-chart'), {
    title: 'Loss', series: [{ label: 'batch loss', stroke: '#2f6fed' }, { label: 'val loss', stroke: '#c0392b', points: true }],
  });
  const accChart = new LiveChart($('acc-chart'), {
    title: 'Accuracy', yRange: [0, 1],
    series: [{ label: 'batch accuracy', stroke: '#2f6fed' }, { label: 'val accuracy', stroke: '#157a48', points: true }],
  });

  function setStatus(text, kind = '') {
    const node = $('status');
    if (node.textContent !== text) node.textContent = text;
    if (node.className !== `status ${kind}`) node.className = `status ${kind}`;
  }

  function setRunning(running) {
    state.running = running;
    $('start').disabled = running;
    $('cancel').disabled = !running;
    for (const id of ['dataset', 'epochs', 'batch-size', 'lr', 'seed', 'seed-random', 'mode']) $(id).disabled = running;
    if (!running) $('seed').disabled = $('seed-random').checked;
  }

  // ---- events, applied once per frame, shown at most every RENDER_MS ---------------------------
  let changed = false; // applied events not shown yet
  let urgent = false; // a run started or ended: show it at this frame
  let saved = null; // the newest epoch's model-saved news, told once per frame
  let lastRender = -Infinity;
  let renderTimer = null;

  function frame() {
    if (inbox.length) {
      // at most APPLY_MS of events a frame: a reloaded page's replay (thousands at once) is spread
      // over a few frames instead of making one long task
      const until = performance.now() + APPLY_MS;
      let n = 0;
      while (n < inbox.length && (n % 64 || n === 0 || performance.now() < until)) applyEvent(inbox[n++]);
      inbox.splice(0, n);
      if (inbox.length) requestFrame();
      changed = true;
      if (saved) { notify('model-saved', saved); saved = null; }
    }
    if (!changed) return;
    const now = performance.now();
    if (urgent || now - lastRender >= RENDER_MS) {
      changed = false; urgent = false; lastRender = now;
      renderProgress();
      lossChart.flush();
      accChart.flush();
    } else if (renderTimer === null) {
      renderTimer = setTimeout(() => { renderTimer = null; requestFrame(); }, RENDER_MS - (now - lastRender));
    }
  }

  function applyEvent(e) {
    switch (e.type) {
      case 'run.started':
        Object.assign(run, { epochs: e.epochs, batches: e.batches, epoch: 0, batch: 0 });
        setStatus(describeStart(e));
        urgent = true;
        break;
      case 'batch.end': {
        const x = e.epoch - 1 + e.batch / e.batches;
        lossChart.push(x, [e.loss, null]);
        accChart.push(x, [e.accuracy, null]);
        Object.assign(run, { epoch: e.epoch, batch: e.batch, elapsed: e.elapsed, imagesPerS: e.images_per_s });
        break;
      }
      case 'epoch.end':
        lossChart.push(e.epoch, [null, e.val_loss]);
        accChart.push(e.epoch, [null, e.val_accuracy]);
        Object.assign(run, { epoch: e.epoch, batch: run.batches, elapsed: e.elapsed });
        setStatus(`Training… epoch ${e.epoch}/${e.epochs}: val accuracy ${pct(e.val_accuracy, 2)}, val loss ${e.val_loss.toFixed(4)}`);
        if (e.model) saved = { model: e.model, version: `${run.id}-${e.epoch}` }; // the newest one, once per frame
        break;
      case 'run.finished':
        setRunning(false);
        setStatus(`Finished in ${e.seconds.toFixed(1)} s: test accuracy ${pct(e.test_accuracy, 2)} (model ${e.model}).`, 'good');
        endRun(e.model);
        break;
      case 'run.cancelled':
        setRunning(false);
        setStatus(e.epochs_done
          ? `Cancelled after ${e.epochs_done} epoch${e.epochs_done > 1 ? 's' : ''}; the model ${e.model} keeps the last finished epoch.`
          : 'Cancelled before the first epoch finished; nothing was saved.', 'warn');
        endRun(e.model);
        break;
      case 'run.failed':
        setRunning(false);
        setStatus(`Failed: ${e.error}`, 'bad');
        endRun(e.model);
        break;
      case 'error':
        setStatus(`Error: ${e.error}`, 'bad');
        break;
      default:
    }
  }

  function endRun(model) {
    run.socket = null;
    urgent = true;
    if (saved) { notify('model-saved', saved); saved = null; }
    notify('run-ended', { model, run: run.id });
  }

  function renderProgress() {
    const total = run.epochs * run.batches;
    const done = (run.epoch - 1) * run.batches + run.batch;
    const fraction = total ? Math.max(0, Math.min(1, (run.epoch === 0 ? 0 : done) / total)) : 0;
    setProgress(Math.round(1000 * fraction) / 1000);
    if (!state.running) {
      setText('progress-text', fraction >= 1 ? 'done' : run.epoch > 0 ? `${run.epoch}/${run.epochs} epochs` : 'idle');
      return;
    }
    const eta = fraction > 0 ? run.elapsed / fraction - run.elapsed : NaN;
    setText('progress-text', `epoch ${Math.max(run.epoch, 1)}/${run.epochs} · ${Math.round(100 * fraction)}%`
      + (Number.isFinite(eta) ? ` · ETA ${eta < 60 ? `${eta.toFixed(0)} s` : `${(eta / 60).toFixed(1)} min`}` : '')
      + (run.imagesPerS ? ` · ${Math.round(run.imagesPerS).toLocaleString()} img/s` : ''));
  }

  function setProgress(value) {
    const bar = $('progress');
    if (bar.value !== value) bar.value = value;
  }

  // ---- the run's event stream: its history first, then live ---------------------------------
  function attach(runId) {
    if (run.socket) run.socket.close();
    inbox.length = 0; // a replay still being applied belongs to the old socket: the new one replays it all
    saved = null;
    run.id = runId;
    lossChart.reset(); accChart.reset();
    setRunning(true);
    notify('run-started', { run: runId });
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${proto}://${location.host}/api/runs/${runId}/events`);
    run.socket = socket;
    let ended = false;
    socket.onmessage = (msg) => {
      const event = JSON.parse(msg.data);
      if (END.has(event.type) || event.type === 'error') ended = true;
      inbox.push(event);
      requestFrame();
    };
    socket.onclose = () => {
      if (ended || run.socket !== socket) return;
      setStatus('Lost the connection to the server; reconnecting…', 'warn');
      setTimeout(async () => {
        try {
          const record = await api(`/api/runs/${runId}`);
          if (record.state === 'running') attach(runId);
          else { inbox.push({ type: 'run.failed', error: record.error || record.state }); requestFrame(); }
        } catch (err) { setStatus(`Lost the server: ${err.message}`, 'bad'); setRunning(false); }
      }, 1000);
    };
  }

  $('train-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!$('train-form').reportValidity()) return;
    const mode = $('mode').value;
    const body = {
      dataset: $('dataset').value,
      epochs: Number($('epochs').value),
      batch_size: Number($('batch-size').value),
      learning_rate: Number($('lr').value),
      seed: $('seed-random').checked ? null : Number($('seed').value), // null: the server draws one and records it
    };
    if (mode !== 'new') body.resume = mode;
    $('start').disabled = true;
    try {
      const { id, model, seed } = await api('/api/runs', { method: 'POST', json: body });
      setStatus(`Starting ${model} (seed ${seed})…`);
      attach(id);
    } catch (err) {
      setStatus(`Could not start: ${err.message}`, 'bad');
      $('start').disabled = false;
    }
  });
  $('seed-random').addEventListener('change', () => { $('seed').disabled = $('seed-random').checked; });
  $('cancel').addEventListener('click', async () => {
    $('cancel').disabled = true;
    setStatus('Cancelling at the next batch…', 'warn');
    try { await api(`/api/runs/${run.id}/cancel`, { method: 'POST' }); } catch (err) { setStatus(`Cancel failed: ${err.message}`, 'bad'); }
  });
  $('dataset').addEventListener('change', () => { state.dataset = $('dataset').value; notify('dataset'); });

  // ---- what other cards tell this one --------------------------------------------------------
  subscribe('status', ({ text, kind }) => setStatus(text, kind));
  subscribe('follow-run', ({ run: id }) => attach(id)); // a run another card started (drawings.js: fine-tune)
  subscribe('datasets', () => {
    const select = $('dataset');
    select.replaceChildren(...state.datasets.map((d) => el('option', { value: d.name, disabled: !d.available },
      d.available ? `${d.name} (${d.train.toLocaleString()} train)` : `${d.name} (not downloaded)`)));
    const def = state.datasets.find((d) => d.default) || state.datasets[0];
    if (!def) return;
    select.value = def.name;
    state.dataset = def.name;
    notify('dataset');
  });
  let modeKey = null;
  subscribe('models', () => { // "continue" offers every usable saved model
    const mode = $('mode');
    const keep = mode.value;
    const usable = state.models.filter((m) => !m.damaged);
    const key = usable.map((m) => m.name).join('\n');
    if (key === modeKey) return; // each epoch of a run refreshes the list: the options stay
    modeKey = key;
    mode.replaceChildren(el('option', { value: 'new' }, 'new model'),
      ...usable.map((m) => el('option', { value: m.name }, `continue ${m.name}`)));
    mode.value = usable.some((m) => m.name === keep) ? keep : 'new';
  });
  subscribe('active', ({ name, changed }) => { if (changed) loadSummary(name); });

  /** At start-up: the form's limits, the summary, and the run in progress (or how the last one ended). */
  async function start() {
    const config = loadTrainConfig();
    if (!state.active) loadSummary(null);
    try {
      const { runs, active } = await api('/api/runs');
      if (active) attach(active);
      else if (runs.length) {
        const last = runs[0];
        const kind = { finished: 'good', failed: 'bad', interrupted: 'bad', cancelled: 'warn' }[last.state] || '';
        setStatus(`Last run (${last.model}): ${last.state}${last.error ? `: ${last.error}` : ''}`
          + (last.test_accuracy != null ? `, test accuracy ${pct(last.test_accuracy, 2)}` : ''), kind);
        await showRecorded(last);
      }
    } catch (err) { setStatus(`Could not read the run history: ${err.message}`, 'bad'); }
    await config;
  }

  /** A run that no longer trains: its curves from the history (thinned by the server), its progress. */
  async function showRecorded(record) {
    const points = Math.min(4000, 2 * lossChart.width());
    try {
      const s = await api(`/api/runs/${encodeURIComponent(record.id)}/series?points=${points}`);
      if (run.socket) return; // a run started meanwhile: its own events fill the charts
      run.id = record.id;
      lossChart.load(0, s.batch.loss.x, s.batch.loss.y);
      lossChart.load(1, s.epoch.val_loss.x, s.epoch.val_loss.y);
      accChart.load(0, s.batch.accuracy.x, s.batch.accuracy.y);
      accChart.load(1, s.epoch.val_accuracy.x, s.epoch.val_accuracy.y);
      const planned = (record.config && record.config.epochs) || record.epochs_done || 0;
      Object.assign(run, { epochs: planned, batches: 1, epoch: record.epochs_done, batch: 1 });
      changed = true; urgent = true;
      requestFrame();
    } catch (err) {
      setStatus(`Could not read the last run's curves: ${err.message}`, 'warn');
    }
  }

  return { frame, start };
}

/** Write a node's text only when it changes (a write costs a style, layout and paint). */
function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

/** "Training m on cpu (fused kernels, 2 threads), seed 12345: 8,000 images…" from run.started. */
function describeStart(e) {
  const how = [];
  if (e.path && !(e.device || '').startsWith(e.path)) how.push(PATHS[e.path] || e.path);
  if (e.threads && e.device === 'cpu') how.push(`${e.threads} thread${e.threads > 1 ? 's' : ''}`);
  const seed = e.provenance && e.provenance.config ? e.provenance.config.seed : undefined;
  return `Training ${e.model ? `${e.model} ` : ''}on ${e.device}${how.length ? ` (${how.join(', ')})` : ''}`
    + `${seed != null ? `, seed ${seed}` : ''}: ${e.train_size.toLocaleString()} images…`;
}

/**
 * Set the form's limits, defaults and help from the server's TrainConfig (GET /api/train-config),
 * its one source of truth. Without that route (404) or the server, the HTML's own values stay.
 */
async function loadTrainConfig() {
  let fields;
  try {
    ({ fields } = await api('/api/train-config'));
  } catch {
    return; // an older server: the HTML's fallbacks are the same numbers
  }
  for (const field of fields || []) {
    const input = INPUTS[field.name] && $(INPUTS[field.name]);
    if (input) applyField(input, field);
  }
}

/** One JSON-Schema-like field -> the input's min, max, step, default value and title. */
function applyField(input, f) {
  const set = (attr, v) => { if (typeof v === 'number' && Number.isFinite(v)) input.setAttribute(attr, String(v)); };
  if (f.type === 'integer') input.step = '1';
  else if (f.type === 'number') input.step = 'any';
  set('min', f.minimum ?? f.exclusiveMinimum);
  set('max', f.maximum ?? f.exclusiveMaximum);
  // the value attribute: the input shows it unless the user has already typed there
  if (typeof f.default === 'number') input.defaultValue = String(f.default);
  if (f.help) input.title = f.help;
  if (f.exclusiveMinimum != null || f.exclusiveMaximum != null) {
    // min/max include their bound; an exclusive one is checked here, and reported like the others
    const check = () => {
      const v = input.valueAsNumber;
      const low = f.exclusiveMinimum != null && v <= f.exclusiveMinimum;
      const high = f.exclusiveMaximum != null && v >= f.exclusiveMaximum;
      input.setCustomValidity(low ? `must be more than ${f.exclusiveMinimum}`
        : high ? `must be less than ${f.exclusiveMaximum}` : '');
    };
    input.addEventListener('input', check);
    check();
  }
}

// ---- the Keras-style summary of the model in use (or of the architecture, before any model) ----
async function loadSummary(name) {
  try {
    // before any model: the default architecture, which the registry lists first
    const s = name ? await api(`/api/models/${encodeURIComponent(name)}/summary`) : (await api('/api/architectures')).architectures[0];
    const head = el('tr', {}, el('th', {}, 'Layer (type)'), el('th', {}, 'Output shape'), el('th', { class: 'num' }, 'Param #'));
    const rows = s.layers.map((l) => el('tr', {}, el('td', {}, `${l.name} (${l.type})`),
      el('td', {}, `[${l.output_shape.map((d) => (d === null ? 'null' : d)).join(', ')}]`),
      el('td', { class: 'num' }, l.params.toLocaleString())));
    const total = el('tr', {}, el('th', { scope: 'row' }, 'Total'), el('td', {}), el('td', { class: 'num' }, s.total_params.toLocaleString()));
    $('summary').replaceChildren(head, ...rows, total);
  } catch (err) {
    $('summary').replaceChildren(el('tr', {}, el('td', {}, `summary unavailable: ${err.message}`)));
  }
}
