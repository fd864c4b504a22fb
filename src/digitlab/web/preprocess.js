// Drawing -> MNIST-style 28x28 input. The same steps and arithmetic as
// src/digitlab/inference/preprocess.py (a test feeds both the same drawing and compares):
// grayscale (alpha over white) -> invert if dark on light -> stretch background..ink to 0..1
// -> crop to the ink -> area-resample to fit 20x20 -> paste so the centre of mass is centred.

export const INK = 0.1;
const BOX = 20;
const SIZE = 28;

export class PreprocessError extends Error {}

const round = (v) => Math.floor(v + 0.5);
// v / 255 for each byte value: the same doubles as dividing, without a division per channel
const BYTE_TO_UNIT = Float64Array.from({ length: 256 }, (_, v) => v / 255);

function median(values) {
  const a = Float64Array.from(values).sort();
  const n = a.length;
  return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

/** RGBA bytes (width*height*4) -> grayscale Float64Array in [0, 1]. */
export function toGray(rgba, width, height) {
  const out = new Float64Array(width * height);
  const unit = BYTE_TO_UNIT;
  for (let i = 0; i < out.length; i++) {
    const r = unit[rgba[4 * i]], g = unit[rgba[4 * i + 1]], b = unit[rgba[4 * i + 2]], a = unit[rgba[4 * i + 3]];
    const lum = 0.299 * r + 0.587 * g + 0.114 * b;
    out[i] = a * lum + (1.0 - a);
  }
  return out;
}

function areaWeights(src, dst) {
  const scale = src / dst;
  const w = Array.from({ length: dst }, () => new Float64Array(src));
  for (let i = 0; i < dst; i++) {
    const lo = i * scale, hi = (i + 1) * scale;
    for (let j = Math.floor(lo); j < src && j < hi; j++) {
      w[i][j] = Math.min(hi, j + 1) - Math.max(lo, j);
    }
    for (let j = 0; j < src; j++) w[i][j] /= scale;
  }
  return w;
}

/** Box-filter resample of a (h x w) Float64Array to (nh x nw): Wy @ img @ Wx^T. */
export function resizeArea(img, h, w, nh, nw) {
  const wy = areaWeights(h, nh), wx = areaWeights(w, nw);
  const tmp = new Float64Array(nh * w);
  for (let i = 0; i < nh; i++) {
    const row = wy[i];
    for (let k = 0; k < h; k++) {
      const c = row[k];
      if (c === 0) continue;
      for (let j = 0; j < w; j++) tmp[i * w + j] += c * img[k * w + j];
    }
  }
  const out = new Float64Array(nh * nw);
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      const col = wx[j];
      let s = 0;
      for (let k = 0; k < w; k++) if (col[k] !== 0) s += tmp[i * w + k] * col[k];
      out[i * nw + j] = s;
    }
  }
  return out;
}

/** Grayscale (h x w, either polarity) -> Float32Array(784), white digit on black. */
export function centerOfMassCrop(gray, h, w) {
  if (h < 8 || w < 8) throw new PreprocessError(`image must be at least 8x8 pixels, got ${h}x${w}`);
  const border = [];
  for (let x = 0; x < w; x++) border.push(gray[x], gray[(h - 1) * w + x]);
  for (let y = 1; y < h - 1; y++) border.push(gray[y * w], gray[y * w + w - 1]);
  let img = gray;
  let background = median(border);
  if (background > 0.5) {
    // indexed loops, not map() / for-of: on a 280x280 pad those cost milliseconds in the worker
    img = new Float64Array(gray.length);
    for (let i = 0; i < gray.length; i++) img[i] = 1.0 - gray[i];
    background = median(border.map((v) => 1.0 - v));
  }
  let peak = -Infinity;
  for (let i = 0; i < img.length; i++) if (img[i] > peak) peak = img[i];
  if (peak - background < INK) throw new PreprocessError('nothing drawn: the image has no visible digit');
  const ink = new Float64Array(h * w);
  let top = h, bottom = -1, left = w, right = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = Math.min(Math.max((img[y * w + x] - background) / (peak - background), 0.0), 1.0);
      ink[y * w + x] = v;
      if (v > INK) {
        if (y < top) top = y;
        if (y > bottom) bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
  }
  const ch = bottom - top + 1, cw = right - left + 1;
  const crop = new Float64Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(top + y) * w + left + x];
  let nh, nw;
  if (ch >= cw) { nh = BOX; nw = Math.max(1, round(BOX * cw / ch)); }
  else { nh = Math.max(1, round(BOX * ch / cw)); nw = BOX; }
  const small = resizeArea(crop, ch, cw, nh, nw);
  let total = 0, sy = 0, sx = 0;
  for (let y = 0; y < nh; y++) {
    let rowSum = 0;
    for (let x = 0; x < nw; x++) rowSum += small[y * nw + x];
    sy += rowSum * y;
    total += rowSum;
  }
  for (let x = 0; x < nw; x++) {
    let colSum = 0;
    for (let y = 0; y < nh; y++) colSum += small[y * nw + x];
    sx += colSum * x;
  }
  const cy = sy / total, cx = sx / total;
  const oy = Math.min(Math.max(round(SIZE / 2 - 0.5 - cy), 0), SIZE - nh);
  const ox = Math.min(Math.max(round(SIZE / 2 - 0.5 - cx), 0), SIZE - nw);
  const out = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) out[(oy + y) * SIZE + ox + x] = small[y * nw + x];
  return out;
}

/** Canvas RGBA -> model input. */
export function rgbaToInput(rgba, width, height) {
  return centerOfMassCrop(toGray(rgba, width, height), height, width);
}
