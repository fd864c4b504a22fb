// The Data card: the dataset picked in the Train form: its size, class balance and a grid of
// examples from either split ("Show others" draws another sample); and the full datasets the
// server can download (MNIST, Fashion-MNIST), with a progress bar and cancel. The download runs
// on the server (the CLI's own code: mirrors, checksums, atomic writes); this card polls it.
import { api, decodePixels, drawDigit, el } from './api.js';
import { notify, state, subscribe } from './store.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 250;
const ABOUT = { mnist: 'the full 70,000 handwritten digits', 'fashion-mnist': '70,000 photos of clothes (Zalando)' };
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

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

  // ---- downloads ---------------------------------------------------------------------------------
  const downloads = new Map(); // name -> {item, button, cancel, bar, text, news, error, polling}

  function renderDownloads() {
    const remote = state.datasets.filter((d) => d.downloadable);
    $('downloads').hidden = !remote.length;
    for (const d of remote) {
      let entry = downloads.get(d.name);
      if (!entry) {
        entry = downloadItem(d);
        downloads.set(d.name, entry);
        $('download-list').append(entry.item);
        if (!d.available) {
          showDownload(d.name, { state: 'idle' });
          poll(d.name, true); // one started before this page loaded goes on showing
        }
      }
      entry.size.textContent = d.download_size ? mb(d.download_size) : '';
      if (d.available && entry.state !== 'finished') showDownload(d.name, { state: 'here' });
    }
  }

  function downloadItem(d) {
    const button = el('button', { type: 'button', 'aria-label': `download ${d.name}` }, 'Download');
    const cancel = el('button', { type: 'button', hidden: true, 'aria-label': `cancel the ${d.name} download` }, 'Cancel');
    const bar = el('progress', { max: '1', value: '0', hidden: true, 'aria-label': `${d.name} download` });
    const text = el('span', { class: 'muted small download-text' });
    const news = el('span', { class: 'small download-state', role: 'status' });
    const error = el('p', { class: 'status bad download-error', role: 'alert', hidden: true });
    const size = el('span', { class: 'muted small' });
    const item = el('li', { 'data-dataset': d.name },
      el('div', { class: 'download-head' }, el('strong', {}, d.name), ' ', el('span', { class: 'muted small' }, ABOUT[d.name] || ''),
        ' ', size, ' ', news),
      el('div', { class: 'download-row' }, button, bar, text, cancel), error);
    button.addEventListener('click', () => startDownload(d.name));
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try { await api(`/api/datasets/${encodeURIComponent(d.name)}/download/cancel`, { method: 'POST' }); } catch (err) {
        showDownload(d.name, { state: 'failed', error: err.message });
      }
    });
    return { item, button, cancel, bar, text, news, error, size, polling: false, state: null };
  }

  async function startDownload(name) {
    const entry = downloads.get(name);
    entry.button.disabled = true;
    try {
      showDownload(name, await api(`/api/datasets/${encodeURIComponent(name)}/download`, { method: 'POST' }));
      poll(name);
    } catch (err) {
      showDownload(name, { state: 'failed', error: err.message });
    }
  }

  /** Follow the download of `name` until it ends; `quiet`: only if one is under way (at page load). */
  async function poll(name, quiet = false) {
    const entry = downloads.get(name);
    if (entry.polling) return;
    entry.polling = true;
    try {
      for (;;) {
        let status;
        try {
          status = await api(`/api/datasets/${encodeURIComponent(name)}/download`);
        } catch (err) {
          if (!quiet) showDownload(name, { state: 'failed', error: err.message });
          return;
        }
        if (quiet && status.state !== 'running') return;
        quiet = false;
        showDownload(name, status);
        if (status.state !== 'running') {
          if (status.state === 'finished') await start(); // the Train form now offers it
          return;
        }
        await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
      }
    } finally {
      entry.polling = false;
    }
  }

  /** Show a status: here, idle, running (bar and bytes), finished, failed (one line), cancelled. */
  function showDownload(name, s) {
    const e = downloads.get(name);
    e.state = s.state;
    const running = s.state === 'running';
    e.button.hidden = running || s.state === 'here' || s.state === 'finished';
    e.button.disabled = false;
    e.button.textContent = s.state === 'failed' || s.state === 'cancelled' ? 'Try again' : 'Download';
    e.cancel.hidden = !running;
    if (!running) e.cancel.disabled = false;
    e.bar.hidden = !running;
    if (running) {
      const fraction = s.total ? s.done / s.total : 0;
      if (Math.abs(e.bar.value - fraction) > 0.0005) e.bar.value = fraction;
      const text = `${mb(s.done)}${s.total ? ` of ${mb(s.total)}` : ''}`
        + (s.file ? ` · ${s.file} (${Math.min(s.files_done + 1, s.files)} of ${s.files})` : '');
      if (e.text.textContent !== text) e.text.textContent = text;
    } else {
      e.text.textContent = '';
    }
    // the state in words, for everyone and for screen readers (a live region): changes only
    const news = { here: 'on this machine', idle: 'not downloaded', running: 'downloading…', finished: 'downloaded and verified',
      failed: 'download failed', cancelled: 'download cancelled' }[s.state] || s.state;
    if (e.news.textContent !== news) e.news.textContent = news;
    e.news.className = `small download-state ${s.state}`;
    e.error.hidden = s.state !== 'failed';
    e.error.textContent = s.state === 'failed' ? s.error || 'failed' : '';
  }

  subscribe('datasets', renderDownloads);

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
