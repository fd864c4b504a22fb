/* Fused 3x3 convolution + 2x2 max-pool + ReLU for the blog CNN's tiny channel counts.
 *
 * NHWC float32; "valid" convolution (stride 1, no padding); pooling with floor, as torch's
 * MaxPool2d(2): a last odd row/column is dropped, so it is never computed. ReLU comes after the
 * pool (the two commute). The backward visits only the conv outputs that won the pool, the only
 * ones a gradient reaches. Ties go to the first maximum in row-major order, as in torch.
 *
 * Weights: wk is (3, 3, CI, CO) (forward, weight gradient); wkT is (CO, 3, 3, CI) (input
 * gradient). The output channels (8 or 16) are one GCC vector, so every multiply-add works on
 * all channels at once on any x86/ARM SIMD width. Called through ctypes, which releases the GIL:
 * batch shards on different threads run in parallel.
 */
#include <stddef.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
typedef int i8 __attribute__((vector_size(32)));
typedef int i16 __attribute__((vector_size(64)));

static inline v8 ld8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline v16 ld16(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }
static inline void st16(float *p, v16 v) { memcpy(p, &v, sizeof v); }
/* where(gate > 0, v, 0), lane by lane (C has no vector ?:) */
static inline v8 where_pos8(v8 gate, v8 v) { return (v8)((i8)v & (gate > (v8){0})); }
static inline v16 where_pos16(v16 gate, v16 v) { return (v16)((i16)v & (gate > (v16){0})); }

/* ---- conv 1 -> 8 on 28x28 (or any HxW) --------------------------------------------------- */

void cpr_fwd_1_8(const float *x, const float *wk, const float *b, float *out, unsigned char *arg,
                 int N, int H, int W) {
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    v8 w[9];
    for (int k = 0; k < 9; k++) w[k] = ld8(wk + 8 * k);
    const v8 bias = ld8(b);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * H * W;
        for (int pi = 0; pi < PH; pi++) {
            for (int pj = 0; pj < PW; pj++) {
                v8 best = bias, acc;
                i8 a = {0};
                for (int q = 0; q < 4; q++) {
                    const float *xp = xn + (size_t)(2 * pi + (q >> 1)) * W + 2 * pj + (q & 1);
                    acc = bias;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) acc += xp[ky * W + kx] * w[ky * 3 + kx];
                    if (q == 0) {
                        best = acc;
                    } else {  /* strictly greater: ties keep the first, as torch does */
                        i8 m = acc > best;
                        best = (v8)(((i8)acc & m) | ((i8)best & ~m));
                        a = (q & m) | (a & ~m);
                    }
                }
                const size_t o = (((size_t)n * PH + pi) * PW + pj) * 8;
                st8(out + o, where_pos8(best, best));
                for (int c = 0; c < 8; c++) arg[o + c] = (unsigned char)a[c];
            }
        }
    }
}

void cpr_bwd_1_8(const float *x, const float *wkT, const float *out, const unsigned char *arg,
                 const float *g, float *dwk, float *db, float *dx, int N, int H, int W) {
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    v8 dw[9] = {{0}}, dbias = {0}, w[9];
    for (int k = 0; k < 9; k++)  /* wkT is (8, 3, 3, 1): gather per tap the 8 channels */
        for (int c = 0; c < 8; c++) w[k][c] = wkT[c * 9 + k];
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * H * W;
        float *dxn = dx ? dx + (size_t)n * H * W : NULL;
        for (int pi = 0; pi < PH; pi++) {
            for (int pj = 0; pj < PW; pj++) {
                const size_t o = (((size_t)n * PH + pi) * PW + pj) * 8;
                v8 gm = where_pos8(ld8(out + o), ld8(g + o));
                dbias += gm;
                i8 av;
                for (int c = 0; c < 8; c++) av[c] = arg[o + c];
                for (int q = 0; q < 4; q++) {
                    v8 gq = (v8)((i8)gm & (av == q));
                    const size_t off = (size_t)(2 * pi + (q >> 1)) * W + 2 * pj + (q & 1);
                    const float *xp = xn + off;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) dw[ky * 3 + kx] += xp[ky * W + kx] * gq;
                    if (dxn) {
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                v8 t = gq * w[ky * 3 + kx];
                                float sum = 0.0f;
                                for (int c = 0; c < 8; c++) sum += t[c];
                                dxn[off + ky * W + kx] += sum;
                            }
                    }
                }
            }
        }
    }
    for (int k = 0; k < 9; k++) st8(dwk + 8 * k, ld8(dwk + 8 * k) + dw[k]);
    st8(db, ld8(db) + dbias);
}

/* ---- conv 8 -> 16 on 13x13 (or any HxW) -------------------------------------------------- */

void cpr_fwd_8_16(const float *x, const float *wk, const float *b, float *out, unsigned char *arg,
                  int N, int H, int W) {
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    v16 w[72];
    for (int k = 0; k < 72; k++) w[k] = ld16(wk + 16 * k);
    const v16 bias = ld16(b);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * H * W * 8;
        for (int pi = 0; pi < PH; pi++) {
            for (int pj = 0; pj < PW; pj++) {
                v16 best = bias, acc;
                i16 a = {0};
                for (int q = 0; q < 4; q++) {
                    const float *xp = xn + ((size_t)(2 * pi + (q >> 1)) * W + 2 * pj + (q & 1)) * 8;
                    acc = bias;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            const float *xk = xp + (ky * W + kx) * 8;
                            const v16 *wr = w + (ky * 3 + kx) * 8;
                            for (int ci = 0; ci < 8; ci++) acc += xk[ci] * wr[ci];
                        }
                    if (q == 0) {
                        best = acc;
                    } else {
                        i16 m = acc > best;
                        best = (v16)(((i16)acc & m) | ((i16)best & ~m));
                        a = (q & m) | (a & ~m);
                    }
                }
                const size_t o = (((size_t)n * PH + pi) * PW + pj) * 16;
                st16(out + o, where_pos16(best, best));
                for (int c = 0; c < 16; c++) arg[o + c] = (unsigned char)a[c];
            }
        }
    }
}

void cpr_bwd_8_16(const float *x, const float *wkT, const float *out, const unsigned char *arg,
                  const float *g, float *dwk, float *db, float *dx, int N, int H, int W) {
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    static __thread v16 dw[72];
    memset(dw, 0, sizeof dw);
    v8 wt[16][9];  /* wkT as, per output channel, nine 8-wide (ci) vectors */
    for (int c = 0; c < 16; c++)
        for (int t = 0; t < 9; t++) wt[c][t] = ld8(wkT + (c * 9 + t) * 8);
    v16 dbias = {0};
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * H * W * 8;
        float *dxn = dx ? dx + (size_t)n * H * W * 8 : NULL;
        for (int pi = 0; pi < PH; pi++) {
            for (int pj = 0; pj < PW; pj++) {
                const size_t o = (((size_t)n * PH + pi) * PW + pj) * 16;
                v16 gm = where_pos16(ld16(out + o), ld16(g + o));
                dbias += gm;
                i16 av;
                for (int c = 0; c < 16; c++) av[c] = arg[o + c];
                for (int q = 0; q < 4; q++) {
                    v16 gq = (v16)((i16)gm & (av == q));
                    i16 nzv = (i16)gq != 0;
                    int nz = 0;
                    for (int c = 0; c < 16; c++) nz |= nzv[c];
                    if (!nz) continue;
                    const size_t off = ((size_t)(2 * pi + (q >> 1)) * W + 2 * pj + (q & 1)) * 8;
                    const float *xp = xn + off;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            const float *xk = xp + (ky * W + kx) * 8;
                            v16 *dr = dw + (ky * 3 + kx) * 8;
                            for (int ci = 0; ci < 8; ci++) dr[ci] += xk[ci] * gq;
                        }
                    if (dxn) {
                        v8 patch[9] = {{0}};
                        for (int c = 0; c < 16; c++) {
                            const float gv = gq[c];
                            if (gv == 0.0f) continue;
                            for (int t = 0; t < 9; t++) patch[t] += gv * wt[c][t];
                        }
                        float *dp = dxn + off;
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                float *d = dp + (ky * W + kx) * 8;
                                st8(d, ld8(d) + patch[ky * 3 + kx]);
                            }
                    }
                }
            }
        }
    }
    for (int k = 0; k < 72; k++) st16(dwk + 16 * k, ld16(dwk + 16 * k) + dw[k]);
    st16(db, ld16(db) + dbias);
}

int digitlab_kernels_version(void) { return 2; }
