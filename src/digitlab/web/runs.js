// The Runs card: every run in the history, newest first, a page at a time; tick runs to draw their
// curves over each other (one colour per run), delete a run's record (its model stays). The
// curves come from the server already thinned to about two points per pixel column
// (GET /api/runs/{id}/series?points=N), so a run of thousands of epochs costs what a short one
// does. While a run trains, its row (and its curves, if ticked) are refreshed at most every
// REFRESH_MS; rows are updated in place, so keyboard focus stays where it was.
import { api, el, pct } from './api.js';
import { OverlayChart } from './charts.js';
import { notify, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);
const PAGE = 10;
const REFRESH_MS = 2000;
// one colour per ticked run: distinct hues, each at least 3:1 against the white chart (WCAG non-text contrast)
const PALETTE = ['#1f5fd1', '#c2410c', '#15803d', '#9333ea', '#b91c1c', '#0f766e', '#a16207', '#be185d'];
const OPEN_KEY = 'digitlab.history.open';
const COLUMNS = ['compare', 'state', 'model', 'dataset', 'config', 'epochs', 'best val acc', 'final val acc',
  'duration', 'started', ''];
const NUMERIC = new Set(['epochs', 'best val acc', 'final val acc', 'duration']);

export function createRunsCard() {
  let offset = 0;
  let total = 0;
  let runs = []; // this page's records
  let active = null; // the id of the run that trains
  const rows = new Map(); // id -> {row, cells, box, del}
  const selected = new Map(); // id -> {color, record}: in the order ticked
  const series = new Map(); // id -> the server's series (refetched while the run trains)
  let refreshTimer = null;
  let lastRefresh = -Infinity;

  const details = $('history');
  const lossChart = new OverlayChart($('compare-loss'), {
    title: 'Loss', batchLabel: 'batch loss', valLabel: 'val loss', better: 'min',
  });
  const accChart = new OverlayChart($('compare-acc'), {
    title: 'Accuracy', yRange: [0, 1], batchLabel: 'batch accuracy', valLabel: 'val accuracy', better: 'max',
  });

  // ---- the list ---------------------------------------------------------------------------------
  async function refresh() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    lastRefresh = performance.now();
    let page;
    try {
      page = await api(`/api/runs?offset=${offset}&limit=${PAGE}`);
    } catch (err) {
      showError(`Could not list runs: ${err.message}`);
      return;
    }
    if (page.total && offset >= page.total) { // the last page emptied (deletes): show the one before
      offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
      refresh();
      return;
    }
    ({ runs, total, active } = page);
    render();
    for (const r of runs) if (selected.has(r.id)) selected.get(r.id).record = r;
    if ([...selected.keys()].some((id) => id === active || !series.has(id))) drawSelected();
  }

  /** A refresh now, or at most every REFRESH_MS while news keeps coming (epochs of a run). */
  function refreshSoon() {
    if (refreshTimer !== null) return;
    const wait = Math.max(0, REFRESH_MS - (performance.now() - lastRefresh));
    refreshTimer = setTimeout(refresh, wait);
  }

  function showError(text) {
    $('runs-error').textContent = text;
    $('runs-error').hidden = !text;
  }

  function render() {
    showError('');
    $('runs-count').textContent = total ? `${total} run${total > 1 ? 's' : ''}` : 'none yet';
    $('runs-page').textContent = total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : '';
    $('runs-newer').disabled = offset === 0;
    $('runs-older').disabled = offset + PAGE >= total;
    const table = $('runs-table');
    if (!runs.length) {
      rows.clear();
      table.replaceChildren(el('tr', {}, el('td', { class: 'muted' }, 'No runs yet: train a model above.')));
      return;
    }
    const ids = runs.map((r) => r.id);
    const same = ids.length === rows.size && ids.every((id, i) => [...rows.keys()][i] === id);
    if (!same) { // another page, a new or deleted run: new rows, keeping focus on the same control
      const focused = document.activeElement && table.contains(document.activeElement)
        ? { id: document.activeElement.closest('tr')?.dataset.run, kind: document.activeElement.dataset.kind } : null;
      rows.clear();
      const head = el('tr', {}, ...COLUMNS.map((c) => el('th', { scope: 'col', class: NUMERIC.has(c) ? 'num' : '' },
        c === '' ? el('span', { class: 'visually-hidden' }, 'actions') : c)));
      table.replaceChildren(el('caption', { class: 'visually-hidden' }, 'Training runs, newest first'), head,
        ...runs.map((r) => newRow(r)));
      if (focused && rows.has(focused.id)) rows.get(focused.id)[focused.kind === 'delete' ? 'del' : 'box'].focus();
    }
    for (const r of runs) updateRow(r);
  }

  function newRow(r) {
    const box = el('input', { type: 'checkbox', 'data-kind': 'compare' });
    box.addEventListener('change', () => toggle(r.id, box));
    const del = el('button', { type: 'button', class: 'link danger', 'data-kind': 'delete' }, 'delete');
    del.addEventListener('click', () => remove(r.id));
    const cells = {};
    const row = el('tr', { 'data-run': r.id }, ...COLUMNS.map((c) => {
      const td = el('td', { 'data-label': c, class: NUMERIC.has(c) ? 'num' : '' });
      if (c === 'compare') td.append(box);
      else if (c === '') td.append(del);
      cells[c] = td;
      return td;
    }));
    rows.set(r.id, { row, cells, box, del });
    return row;
  }

  /** Write a row's cells; only text that changed is written. */
  function updateRow(r) {
    const { row, cells, box, del } = rows.get(r.id);
    const c = r.config || {};
    const when = new Date(r.created * 1000);
    const label = runLabel(r);
    const text = {
      state: r.state,
      model: r.model,
      dataset: r.dataset,
      config: `batch ${c.batch_size} · lr ${c.learning_rate} · seed ${c.seed}${c.resume ? ` · resumed ${c.resume}` : ''}`,
      epochs: `${r.epochs_done}/${c.epochs ?? '?'}`,
      'best val acc': pct(r.best_val_accuracy, 2),
      'final val acc': pct(r.val_accuracy, 2),
      duration: duration(r.duration),
      started: when.toLocaleString(),
    };
    for (const [k, v] of Object.entries(text)) if (cells[k].textContent !== v) cells[k].textContent = v;
    cells.state.className = `state ${r.state}`;
    if (r.error) cells.state.title = r.error;
    const pick = selected.get(r.id);
    box.checked = Boolean(pick);
    box.setAttribute('aria-label', `compare ${label}`);
    row.classList.toggle('active', Boolean(pick));
    if (pick) row.style.setProperty('--run-color', pick.color); else row.style.removeProperty('--run-color');
    const running = r.state === 'running';
    del.disabled = running;
    del.setAttribute('aria-label', `delete the record of run ${label}`);
    del.title = running ? 'cancel the run first' : 'delete this record (the model stays)';
  }

  // ---- compare: the ticked runs' curves ---------------------------------------------------------
  function toggle(id, box) {
    if (!box.checked) {
      selected.delete(id);
    } else if (selected.size >= PALETTE.length) {
      box.checked = false;
      showError(`At most ${PALETTE.length} runs at once: untick one first.`);
      return;
    } else {
      const used = new Set([...selected.values()].map((s) => s.color));
      selected.set(id, { color: PALETTE.find((c) => !used.has(c)), record: runs.find((r) => r.id === id) });
    }
    showError('');
    for (const r of runs) updateRow(r);
    drawSelected();
  }

  let drawing = null;
  let shownKey = '';
  /** Fetch what is missing (and the training run's newer curves), then draw every ticked run. */
  async function drawSelected() {
    const mine = (drawing = {});
    const points = Math.min(4000, 2 * lossChart.width());
    const wanted = [...selected.entries()];
    let changed = false;
    try {
      await Promise.all(wanted.map(async ([id, pick]) => {
        const stale = !series.has(id) || id === active || (pick.record && pick.record.state === 'running');
        if (!stale) return;
        const s = await api(`/api/runs/${encodeURIComponent(id)}/series?points=${points}`);
        const old = series.get(id);
        if (!old || old.batches_stored !== s.batches_stored || old.epochs_stored !== s.epochs_stored) changed = true;
        series.set(id, s);
      }));
    } catch (err) {
      showError(`Could not read a run's curves: ${err.message}`);
    }
    if (drawing !== mine) return; // a newer selection is being drawn
    const key = wanted.map(([id, pick]) => `${id}:${pick.color}:${id === active}`).join(',');
    if (!changed && key === shownKey) return; // a training run's refresh that brought nothing new
    shownKey = key;
    const shown = wanted.filter(([id]) => series.has(id) && selected.has(id)).map(([id, pick]) => ({
      id, color: pick.color, label: pick.record ? runLabel(pick.record) : id, s: series.get(id),
    }));
    $('compare').hidden = !shown.length;
    $('compare-hint').hidden = shown.length > 0;
    $('compare-legend').replaceChildren(...shown.map((r) => {
      const swatch = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      swatch.style.borderColor = r.color;
      return el('li', {}, swatch, r.label + (r.id === active ? ' (training)' : ''));
    }));
    if (!shown.length) return;
    lossChart.show(shown.map((r) => ({ id: r.id, label: r.label, color: r.color, batch: r.s.batch.loss, val: r.s.epoch.val_loss })));
    accChart.show(shown.map((r) => ({ id: r.id, label: r.label, color: r.color, batch: r.s.batch.accuracy, val: r.s.epoch.val_accuracy })));
  }

  async function remove(id) {
    const r = runs.find((x) => x.id === id);
    if (!r || !window.confirm(`Delete the record of run ${runLabel(r)}? Its curves are lost; the model ${r.model} stays.`)) return;
    try {
      await api(`/api/runs/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (err) {
      showError(`Could not delete: ${err.message}`);
      return;
    }
    selected.delete(id);
    series.delete(id);
    await refresh();
    drawSelected();
    // the focused button went with its row: keep the keyboard user in the table
    if (!document.activeElement || document.activeElement === document.body) {
      const next = $('runs-table').querySelector('button:not([disabled]), input') || details.querySelector('summary');
      next.focus();
    }
    notify('run-deleted', { run: id });
  }

  // ---- wiring -----------------------------------------------------------------------------------
  $('runs-newer').addEventListener('click', () => { offset = Math.max(0, offset - PAGE); refresh(); });
  $('runs-older').addEventListener('click', () => { offset += PAGE; refresh(); });
  if (localStorage.getItem(OPEN_KEY) === 'false') details.open = false;
  details.addEventListener('toggle', () => {
    localStorage.setItem(OPEN_KEY, String(details.open));
    if (details.open) refresh();
  });
  subscribe('run-started', () => refresh());
  subscribe('model-saved', () => { if (details.open) refreshSoon(); }); // after each epoch of a run
  subscribe('run-ended', ({ run }) => { if (run) series.delete(run); refresh(); });

  return { start: refresh };
}

/** "sample-20261129-1623 · 16:23" : the model's name and the start time, to tell runs of one model apart. */
function runLabel(r) {
  const when = new Date(r.created * 1000);
  return `${r.model} · ${when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })}`;
}

function duration(seconds) {
  if (seconds == null) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
