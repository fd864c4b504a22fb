// The Models card: every saved model with its metrics, the one in use (state.active), downloads,
// delete, and "What made the model" (the record's provenance). Damaged records are listed with
// their reason and a delete button only: never used, never served.
import { api, el, pct } from './api.js';
import { notify, state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);

export function createModelsCard() {
  let refreshTimer = null;

  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 300);
  }

  async function refresh() {
    try {
      state.models = (await api('/api/models')).models;
    } catch (err) {
      $('model-table').replaceChildren(el('tr', {}, el('td', {}, `Could not list models: ${err.message}`)));
      return;
    }
    render();
    notify('models');
    const usable = state.models.filter((m) => !m.damaged);
    if (!state.active && usable.length) use(usable[0].name, usable[0].updated, true);
    renderProvenance();
  }

  /** Make `name` the model in use; `version` changes when its file does (after each epoch). */
  function use(name, version, evaluate = false) {
    const changed = state.active !== name;
    state.active = name;
    if (changed) { render(); renderProvenance(); } // a new version of the same model (each epoch) changes no row
    notify('active', { name, version: String(version), changed, evaluate });
  }

  /**
   * The table, row by row: a row is rebuilt only when what it shows changed (during a run, the
   * training model's epochs and time after each epoch), and the table's children are replaced only
   * when the list itself changed. A run's epochs repaint one row, not the card.
   */
  const shown = new Map(); // name -> {key, row}
  let head = null;
  function render() {
    const table = $('model-table');
    if (!state.models.length) {
      shown.clear();
      table.replaceChildren(el('tr', {}, el('td', { class: 'muted' }, 'No saved models yet. Train one above.')));
      return;
    }
    head = head || el('tr', {}, ...['use', 'name', 'dataset', 'epochs', 'test accuracy', 'updated', 'download', '']
      .map((h) => el('th', { class: ['epochs', 'test accuracy'].includes(h) ? 'num' : '' }, h)));
    const rows = state.models.map((m) => {
      const key = JSON.stringify([m.name, m.damaged, m.dataset, m.dataset_name, m.epochs, m.test_accuracy, m.updated, m.name === state.active]);
      const old = shown.get(m.name);
      if (old && old.key === key) return old.row;
      const row = renderRow(m);
      if (old && old.row.parentNode === table) old.row.replaceWith(row);
      shown.set(m.name, { key, row });
      return row;
    });
    for (const name of shown.keys()) if (!state.models.some((m) => m.name === name)) shown.delete(name);
    const current = [...table.children];
    if (current.length !== rows.length + 1 || current[0] !== head || rows.some((row, i) => current[i + 1] !== row)) {
      table.replaceChildren(head, ...rows);
    }
  }

  function renderRow(m) {
    const del = el('button', { type: 'button', class: 'link danger' }, 'delete');
    del.addEventListener('click', () => remove(m.name));
    if (m.damaged) { // listed so the user sees it and can remove it
      return el('tr', { class: 'damaged' }, el('td', {}, '⚠'), el('td', {}, m.name),
        el('td', { colspan: '5', class: 'bad' }, m.damaged), el('td', {}, del));
    }
    const q = encodeURIComponent(m.name);
    const radio = el('input', { type: 'radio', name: 'active-model', value: m.name, 'aria-label': `use ${m.name}` });
    radio.checked = m.name === state.active;
    radio.addEventListener('change', () => use(m.name, m.updated, true));
    return el('tr', { class: m.name === state.active ? 'active' : '' },
      el('td', {}, radio), el('td', {}, m.name), el('td', { title: m.dataset || '' }, m.dataset_name || m.dataset || ''),
      el('td', { class: 'num' }, String(m.epochs ?? '')), el('td', { class: 'num' }, pct(m.test_accuracy, 2)),
      el('td', {}, new Date(m.updated * 1000).toLocaleString()),
      el('td', {}, el('a', { href: `/api/models/${q}/model.onnx`, download: `${m.name}.onnx` }, 'ONNX'), ' · ',
        el('a', { href: `/api/models/${q}/model.safetensors`, download: `${m.name}.safetensors` }, 'safetensors'), ' · ',
        el('a', { href: `/api/models/${q}/tfjs.zip`, download: `${m.name}-tfjs.zip`,
          title: 'TF.js Layers model (model.json + weights) for tf.loadLayersModel' }, 'TF.js')),
      el('td', {}, del));
  }

  async function remove(name) {
    if (!window.confirm(`Delete model ${name}? This cannot be undone.`)) return;
    try {
      await api(`/api/models/${encodeURIComponent(name)}`, { method: 'DELETE' });
      if (state.active === name) {
        state.active = null;
        notify('active', { name: null, version: '', changed: true, evaluate: false });
      }
      await refresh();
    } catch (err) {
      notify('status', { text: `Could not delete ${name}: ${err.message}`, kind: 'bad' });
    }
  }

  /** The record's answer to "what made this model": config, seed, path, versions, data, CPU. */
  let provenanceKey = null;
  function renderProvenance() {
    const m = state.models.find((x) => x.name === state.active);
    const key = JSON.stringify([state.active, Boolean(m), m && m.provenance]);
    if (key === provenanceKey) return; // the same recipe: each epoch of a run changes nothing here
    provenanceKey = key;
    $('details-name').textContent = m ? m.name : 'the model in use';
    const p = m && m.provenance;
    if (!p) {
      // a <dl> holds dt/dd pairs only (axe: definition-list), so the note gets its term too
      $('provenance').replaceChildren(el('dt', {}, 'recipe'),
        el('dd', { class: 'muted' }, m ? 'Not recorded (a model from an older version).' : 'No model yet.'));
      return;
    }
    if (p.imported) { // `digitlab import`: a TF.js model, trained elsewhere
      const i = p.imported;
      const rows = [['imported from', i.source], ['made by', i.generated_by || 'unknown'],
        ['files', `sha256 ${String(i.sha256).slice(0, 16)}…`],
        ['versions', Object.entries(p.versions || {}).map(([k, v]) => `${k} ${v}`).join(', ')]];
      $('provenance').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
      return;
    }
    const c = p.config || {};
    const rows = [
      ['seed', String(c.seed)],
      ['config', `${c.epochs} epochs, batch ${c.batch_size}, learning rate ${c.learning_rate}, shifts ±${c.augment} px`
        + (c.distort !== undefined ? `, distort ${c.distort}` : '') + (c.printed ? `, printed digits ×${c.printed}` : '')],
      ['trained on', `${p.device} (${p.path}, ${c.threads} thread${c.threads > 1 ? 's' : ''})${p.resumed ? `, resumed from ${p.resumed}` : ''}`],
      ['CPU', p.cpu],
      ['dataset', `${p.dataset.name}: ${p.dataset.train} train + ${p.dataset.test} test, sha256 ${p.dataset.sha256.slice(0, 16)}…`],
      ['versions', Object.entries(p.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ];
    $('provenance').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  // a run saves its model after every epoch (draw with it while it trains) and at its end
  subscribe('model-saved', ({ model, version }) => { use(model, version); refreshSoon(); });
  subscribe('run-ended', async ({ model }) => {
    await refresh();
    if (model && state.models.some((m) => m.name === model)) use(model, 'final', true);
  });

  return { start: refresh };
}
