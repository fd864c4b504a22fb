// The activation view under the prediction ("What it sees"): the first convolution's 8 feature
// maps, the second's 16, and an occlusion map of which input pixels pushed the answer. The
// numbers and their colours are computed off the main thread (the inference worker, or the
// server's route, see recognizer.js); this module keeps only the newest result and paints it in
// the page's next animation frame: three putImageData calls and two short texts, nothing when
// nothing changed. Folded (<details> closed), nothing is asked for at all.
import { el } from './api.js';

// key, title, help, the blog CNN's picture size (so nothing moves when the first one arrives)
const PARTS = [
  ['saliency', 'which pixels pushed the answer', 'red: ink that supports it · blue: ink that argues against it', 28, 28],
  ['conv1', 'first convolution', 'its 8 feature maps after ReLU (26×26), on one colour scale', 107, 53],
  ['conv2', 'second convolution', 'its 16 feature maps after ReLU (11×11)', 95, 23],
];

export function createActivationView(details) {
  const canvases = {};
  const figures = PARTS.map(([key, title, help, width, height]) => {
    const canvas = el('canvas', { class: `maps ${key}`, width: String(width), height: String(height), role: 'img',
      'aria-label': `${title}: ${help}` });
    canvases[key] = canvas;
    return el('figure', { class: `sees-${key}` }, canvas, el('figcaption', {}, el('span', {}, title), el('span', { class: 'muted' }, help)));
  });
  const note = el('p', { class: 'muted small sees-note', 'aria-live': 'off' }, 'Draw a digit to see what the model sees.');
  details.append(el('div', { class: 'sees-row' }, figures[0], el('div', { class: 'sees-layers' }, figures[1], figures[2])), note);
  let pending = null; // the newest result not painted yet ('clear' for an empty pad)
  let painted = 0;

  function put(canvas, picture) {
    if (canvas.width !== picture.width || canvas.height !== picture.height) {
      canvas.width = picture.width; // resizing clears it: only when a model's shapes change
      canvas.height = picture.height;
    }
    canvas.getContext('2d').putImageData(new ImageData(picture.data, picture.width, picture.height), 0, 0);
    canvas.dataset.max = picture.max.toPrecision(4);
  }

  function setNote(text) {
    if (note.textContent !== text) note.textContent = text;
  }

  return {
    /** Whether the view is unfolded (otherwise nothing should be computed for it). */
    get open() { return details.open; },
    /** Keep `seen` (recognizer.see()'s result) for the next frame; the caller requests the frame. */
    show(seen) { pending = seen; },
    clear() { pending = 'clear'; },
    fail(message) { pending = { failed: message }; },
    /** Paint what arrived since the last frame, if anything. */
    frame() {
      if (!pending) return;
      const seen = pending;
      pending = null;
      if (seen === 'clear') {
        for (const canvas of Object.values(canvases)) {
          canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
          delete canvas.dataset.max;
        }
        delete details.dataset.digit;
        setNote('Draw a digit to see what the model sees.');
        return;
      }
      if (seen.failed) { setNote(`The activation view is unavailable: ${seen.failed}`); return; }
      if (!details.open) return; // folded after it was asked for: nothing is painted (unfolding asks again)
      for (const [key] of PARTS) put(canvases[key], seen.pictures[key]);
      painted += 1;
      details.dataset.digit = String(seen.digit);
      details.dataset.painted = String(painted);
      if (seen.ms !== undefined) details.dataset.ms = seen.ms.toFixed(1);
      setNote(seen.ms !== undefined ? 'Computed in your browser, in the recognizer\'s Web Worker: one batch of 170 images, '
        + 'the drawing and 169 copies with a 4×4 patch erased.' : 'Computed on the server (the in-page worker is not running).');
    },
  };
}
