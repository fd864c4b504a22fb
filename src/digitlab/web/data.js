// The Data card: the dataset picked in the Train form: its size, class balance and a grid of
// examples from either split ("Show others" draws another sample).
import { api, decodePixels, drawDigit, el } from './api.js';
import { notify, state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);

export function createDataCard() {
  let examplesSeed = 1;

  async function show() {
    const d = state.datasets.find((x) => x.name === state.dataset);
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
      const ex = await api(`/api/datasets/${encodeURIComponent(d.name)}/examples?split=${$('split').value}&count=24&seed=${examplesSeed}`);
      $('examples').replaceChildren(...ex.examples.map((e) => el('div', { class: 'example' },
        drawDigit(el('canvas'), decodePixels(e.pixels)), el('span', {}, ex.classes[e.label]))));
    } catch (err) {
      $('examples').replaceChildren(el('p', { class: 'muted' }, `No examples: ${err.message}`));
    }
  }

  $('split').addEventListener('change', show);
  $('shuffle').addEventListener('click', () => { examplesSeed++; show(); });
  subscribe('dataset', show);

  /** Load the dataset list; the Train form picks one, and this card shows it. */
  async function start() {
    try {
      state.datasets = (await api('/api/datasets')).datasets;
    } catch (err) {
      notify('status', { text: `Could not load datasets: ${err.message}`, kind: 'bad' });
      return;
    }
    notify('datasets');
  }

  return { start };
}
