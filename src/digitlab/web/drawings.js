// The Data card's "My drawings": what was taught on the Draw card (GET /api/drawings), as a grid
// with labels (held-out ones marked, misread ones say what the model read), per-digit counts,
// delete, export as an IDX folder (a zip), and "Fine-tune": a short run that resumes the model in
// use on its dataset with the drawings mixed in. The run shows on the Train card like any other;
// its before/after accuracies come back in the model's record (`drawings`) and are shown here.
import { api, decodePixels, drawDigit, el, pct } from './api.js';
import { notify, state, subscribe } from './store.js';

// Fine-tuning: a few epochs at a quarter of the default peak learning rate learn a new style and
// keep the rest (tests/test_drawings.py measures it: a misread style from under 50% to over 90%).
export const FINE_TUNE = { epochs: 3, learning_rate: 0.001, batch_size: 128 };

export function createDrawingsPanel(container) {
  const count = el('span', { class: 'muted' });
  const counts = el('div', { class: 'drawing-counts', 'aria-label': 'drawings per digit' });
  const grid = el('div', { class: 'drawing-grid' });
  const exportButton = el('button', { type: 'button' }, 'Export IDX folder (.zip)');
  const tuneButton = el('button', { type: 'button', class: 'primary' }, 'Fine-tune with my drawings');
  const status = el('p', { class: 'small drawings-status', role: 'status' });
  const result = el('p', { class: 'small drawings-result' });
  container.append(
    el('h3', {}, 'My drawings ', count),
    el('p', { class: 'muted small' }, 'Confirm or correct a prediction on the Draw card to keep the drawing here, '
      + 'on this machine only. Of each digit, the 2nd, 7th, 12th… drawing is held out to measure fine-tuning.'),
    counts, grid, el('div', { class: 'buttons' }, tuneButton, exportButton), status, result);
  let list = { drawings: [], counts: new Array(10).fill(0), heldout_counts: new Array(10).fill(0) };
  let ourRun = null; // the fine-tuning run started here, while it trains

  async function refresh() {
    try {
      list = await api('/api/drawings');
    } catch (err) {
      setStatus(`Could not list the drawings: ${err.message}`, 'bad');
      return;
    }
    render();
  }

  function classes() {
    return (state.models.find((m) => m.name === state.active) || {}).classes || [...'0123456789'];
  }

  function render() {
    const names = classes();
    const usable = list.drawings.filter((d) => !d.damaged);
    const held = usable.filter((d) => d.heldout).length;
    count.textContent = `(${usable.length}${held ? `, ${held} held out` : ''}${list.damaged ? `, ${list.damaged} damaged` : ''})`;
    counts.replaceChildren(...list.counts.map((n, i) => el('span', {
      class: n ? 'count' : 'count none', title: `${names[i] ?? i}: ${n} (${list.heldout_counts[i]} held out)`,
    }, el('b', {}, String(names[i] ?? i)), el('span', {}, `×${n}`))));
    grid.replaceChildren(...list.drawings.slice().reverse().map(tile));
    if (!list.drawings.length) grid.append(el('p', { class: 'muted small' }, 'None yet.'));
    updateButtons();
  }

  function tile(d) {
    const names = classes();
    const remove = el('button', { type: 'button', class: 'link danger', 'aria-label': `delete drawing ${d.id}`, title: 'delete' }, '×');
    remove.addEventListener('click', () => del(d.id));
    if (d.damaged) {
      return el('div', { class: 'drawing damaged', 'data-id': String(d.id), title: d.damaged },
        el('span', { class: 'bad' }, '⚠ damaged'), el('span', { class: 'muted' }, d.damaged.slice(0, 40)), remove);
    }
    const misread = d.predicted !== null && d.predicted !== undefined && d.predicted !== d.label;
    return el('div', { class: `drawing${d.heldout ? ' heldout' : ''}`, 'data-id': String(d.id), 'data-label': String(d.label),
      title: `drawing ${d.id}: ${names[d.label] ?? d.label}${d.model ? `, ${misread ? 'misread' : 'read'} by ${d.model}` : ''}`
        + `${d.heldout ? ' (held out)' : ''}, ${new Date(d.created * 1000).toLocaleString()}` },
    drawDigit(el('canvas'), decodePixels(d.pixels)),
    el('span', { class: 'label' }, String(names[d.label] ?? d.label), remove),
    misread ? el('span', { class: 'wrong' }, `read ${names[d.predicted] ?? d.predicted}`) : null,
    d.heldout ? el('span', { class: 'badge' }, 'held out') : null);
  }

  async function del(id) {
    try {
      await api(`/api/drawings/${id}`, { method: 'DELETE' });
      setStatus(`Deleted drawing ${id}.`);
    } catch (err) {
      setStatus(`Could not delete drawing ${id}: ${err.message}`, 'bad');
    }
    await refresh();
  }

  function updateButtons() {
    const model = state.models.find((m) => m.name === state.active && !m.damaged);
    const learnable = list.drawings.some((d) => !d.damaged && !d.heldout);
    const why = !learnable ? 'teach a drawing first (Draw card)' : !model ? 'no model in use: train one first'
      : state.running || ourRun ? 'a run is training' : '';
    tuneButton.disabled = Boolean(why);
    tuneButton.title = why || `resume ${model.name} for ${FINE_TUNE.epochs} epochs with your drawings mixed in`;
    exportButton.disabled = !list.heldout_counts.some((n) => n > 0);
    exportButton.title = exportButton.disabled ? 'an IDX folder needs a test split: teach a digit twice' : '';
    showResult(model);
  }

  /** The model in use's last fine-tuning: before and after, as its record keeps them. */
  function showResult(model) {
    const t = model && model.drawings;
    if (!t || !t.after) { result.textContent = ''; return; }
    const both = (key) => (t.before && t.before[key] != null ? `${pct(t.before[key])} → ${pct(t.after[key])}` : pct(t.after[key]));
    const parts = [];
    if (t.after.heldout_accuracy != null) parts.push(`held-out drawings ${both('heldout_accuracy')}`);
    parts.push(`${model.dataset_name || model.dataset} test ${both('test_accuracy')}`);
    const text = `${model.name}, fine-tuned with ${t.train} drawing${t.train === 1 ? '' : 's'}`
      + `${t.heldout ? ` (${t.heldout} held out)` : ''}: ${parts.join(', ')}.`;
    if (result.textContent !== text) result.textContent = text;
  }

  function setStatus(text, kind = '') {
    status.textContent = text;
    status.className = `small drawings-status ${kind}`;
  }

  tuneButton.addEventListener('click', async () => {
    const model = state.models.find((m) => m.name === state.active);
    if (!model) return;
    tuneButton.disabled = true;
    try {
      const run = await api('/api/runs', { method: 'POST', json: {
        dataset: model.dataset_name || model.dataset, resume: model.name, with_drawings: true, seed: null, ...FINE_TUNE,
      } });
      ourRun = run.id;
      setStatus(`Fine-tuning ${run.model} with your drawings (${FINE_TUNE.epochs} epochs): progress on the Train card.`);
      notify('follow-run', { run: run.id });
    } catch (err) {
      setStatus(`Could not fine-tune: ${err.message}`, 'bad');
    }
    updateButtons();
  });

  exportButton.addEventListener('click', async () => {
    try { // fetched first, so that an error is a message here, not a downloaded error page
      const response = await fetch('/api/drawings/export.zip');
      if (!response.ok) throw new Error((await response.json()).error || response.statusText);
      const url = URL.createObjectURL(await response.blob());
      const link = el('a', { href: url, download: 'drawings.zip' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setStatus('Exported: unzip it and train with `digitlab train --dataset drawings`.');
    } catch (err) {
      setStatus(`Could not export: ${err.message}`, 'bad');
    }
  });

  subscribe('drawings', refresh);
  subscribe('models', updateButtons);
  subscribe('active', updateButtons);
  subscribe('run-started', updateButtons);
  subscribe('run-ended', ({ run, model }) => {
    if (run && run === ourRun) {
      ourRun = null;
      setStatus(`Fine-tuning of ${model || 'the model'} ended; the model in use is its last epoch.`);
    }
    updateButtons();
  });

  return { start: refresh };
}
