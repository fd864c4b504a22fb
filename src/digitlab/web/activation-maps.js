// The activation view's numbers and pictures, shared by the inference worker (which runs the
// activation graph) and the page (which only paints what it gets). The occlusion batch and the
// saliency are the same arithmetic as inference/activations.py: the input, then one copy per 4x4
// patch (stride 2) with the patch erased; per pixel, the mean over the patches covering it of how
// much erasing lowers the answer's log-odds, log p / (1 - p), with 1 - p summed from the other
// classes. The pictures are RGBA bytes, ready for putImageData.

export const SIZE = 28;
export const PATCH = 4;
export const STRIDE = 2;
const POSITIONS = [];
for (let p = 0; p + PATCH <= SIZE; p += STRIDE) POSITIONS.push(p);
/** [row, col] of each patch, row-major, as in the Python module. */
export const PATCHES = POSITIONS.flatMap((r) => POSITIONS.map((c) => [r, c]));
const MIN_PROBABILITY = 1e-12;

/** The (1 + 169) x 784 batch for a 784-value input (floats in [0, 1]). */
export function occlusionBatch(input) {
  const n = SIZE * SIZE;
  const batch = new Float32Array((1 + PATCHES.length) * n);
  for (let k = 0; k <= PATCHES.length; k++) batch.set(input, k * n);
  PATCHES.forEach(([r, c], i) => {
    const base = (i + 1) * n;
    for (let y = r; y < r + PATCH; y++) batch.fill(0, base + y * SIZE + c, base + y * SIZE + c + PATCH);
  });
  return batch;
}

/** The occlusion batch's probabilities (rows of `classes`) -> the 784-value saliency of `digit`. */
export function saliency(probabilities, classes, digit) {
  const logOdds = (row) => {
    let others = 0; // in class order, never 1 - p (it rounds to 0 when the model is sure)
    for (let j = 0; j < classes; j++) if (j !== digit) others += probabilities[row * classes + j];
    return Math.log(Math.max(probabilities[row * classes + digit], MIN_PROBABILITY))
      - Math.log(Math.max(others, MIN_PROBABILITY));
  };
  const base = logOdds(0);
  const total = new Float64Array(SIZE * SIZE);
  const count = new Float64Array(SIZE * SIZE);
  PATCHES.forEach(([r, c], i) => {
    const drop = base - logOdds(i + 1);
    for (let y = r; y < r + PATCH; y++) {
      for (let x = c; x < c + PATCH; x++) { total[y * SIZE + x] += drop; count[y * SIZE + x] += 1; }
    }
  });
  for (let i = 0; i < total.length; i++) total[i] /= count[i];
  return total;
}

// a perceptual ramp for activations (>= 0): near-black, violet, teal, green, yellow
const RAMP = [[12, 12, 24], [72, 30, 120], [40, 120, 142], [94, 200, 98], [250, 230, 40]];

function rampColour(t, out, o) {
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i, a = RAMP[i], b = RAMP[i + 1];
  out[o] = a[0] + (b[0] - a[0]) * f;
  out[o + 1] = a[1] + (b[1] - a[1]) * f;
  out[o + 2] = a[2] + (b[2] - a[2]) * f;
  out[o + 3] = 255;
}

/**
 * `count` maps of h x w values (C, H, W order) tiled in `cols` columns with 1-pixel gaps, coloured
 * on one scale for the whole layer (its largest value), so strong and quiet channels compare.
 * Returns {data, width, height, max}.
 */
export function atlas(values, count, h, w, cols) {
  const rows = Math.ceil(count / cols);
  const width = cols * w + (cols - 1), height = rows * h + (rows - 1);
  const data = new Uint8ClampedArray(width * height * 4); // gaps stay transparent
  let max = 0;
  for (let i = 0; i < count * h * w; i++) if (values[i] > max) max = values[i];
  const scale = max > 0 ? 1 / max : 0;
  for (let m = 0; m < count; m++) {
    const x0 = (m % cols) * (w + 1), y0 = Math.floor(m / cols) * (h + 1);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) rampColour(values[(m * h + y) * w + x] * scale, data, ((y0 + y) * width + x0 + x) * 4);
    }
  }
  return { data, width, height, max };
}

/**
 * The saliency over the input: the drawing in dim grey, red where its ink supports the answer,
 * blue where erasing it would make the answer likelier; scaled by the largest magnitude (at least
 * 1e-3, so a map of round-off noise stays grey), square-rooted so weaker evidence shows too.
 * Returns {data, width, height, max}.
 */
export function saliencyImage(values, input) {
  const data = new Uint8ClampedArray(SIZE * SIZE * 4);
  let max = 1e-3;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  for (let i = 0; i < SIZE * SIZE; i++) {
    const grey = 25 + 110 * input[i];
    const v = Math.sign(values[i]) * Math.sqrt(Math.abs(values[i]) / max);
    const red = v > 0 ? v : 0, blue = v < 0 ? -v : 0;
    data[4 * i] = grey + (255 - grey) * red;
    data[4 * i + 1] = grey * (1 - Math.max(red, blue) * 0.7);
    data[4 * i + 2] = grey + (255 - grey) * blue;
    data[4 * i + 3] = 255;
  }
  return { data, width: SIZE, height: SIZE, max };
}

/** The three pictures from raw maps: conv1 (C1 x H1 x W1), conv2, saliency (784), input (784). */
export function pictures({ conv1, conv1Dims, conv2, conv2Dims, saliency: sal, input }) {
  return {
    conv1: atlas(conv1, conv1Dims[0], conv1Dims[1], conv1Dims[2], Math.ceil(conv1Dims[0] / 2)),
    conv2: atlas(conv2, conv2Dims[0], conv2Dims[1], conv2Dims[2], Math.ceil(conv2Dims[0] / 2)),
    saliency: saliencyImage(sal, input),
  };
}
