/* Fused 3x3 convolution + 2x2 max-pool + ReLU for the blog CNN's tiny channel counts.
 *
 * NHWC float32; "valid" convolution (stride 1, no padding); pooling with floor, as torch's
 * MaxPool2d(2): a last odd row/column is dropped, so it is never computed. ReLU comes after the
 * pool (the two commute). The backward visits only the conv outputs that won the pool, the only
 * ones a gradient reaches. Ties go to the first maximum in row-major order, as in torch.
 *
 * Weights: wk is (3, 3, CI, CO) (forward, weight gradient); wkT is (CO, 3, 3, CI) (input
 * gradient). One macro, KERNELS, stamps out cpr_fwd_CI_CO and cpr_bwd_CI_CO with the channel
 * counts as compile-time constants: the CO output channels are one GCC vector, so every
 * multiply-add works on all channels at once and the accumulators stay in SIMD registers (a
 * version with run-time channel counts was 10x slower). CONV_POOL_RELU(CI, CO), at the end, makes
 * one shape; kernels.py's SHAPES lists the same ones.
 *
 * Portable build: compiled for the architecture's baseline (setup.py: never for the build CPU). On
 * x86-64 with GCC >= 12 and glibc each kernel is compiled three times, for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2 + FMA) and the baseline, and the exported symbol is an ifunc: the dynamic loader
 * asks the CPU once, when the library loads, and binds it to the best copy. (GCC's target_clones
 * would do that in one attribute, but GCC 12 compiles the vector selects of its AVX-512 clone as
 * AVX2 byte blends instead of mask registers: the 1 -> 8 block ran 14% slower than a native build.
 * A target() attribute per copy gives the same code as a native build.)
 * Elsewhere (AArch64, clang, macOS, musl) the plain C is compiled for the target's own SIMD.
 *
 * Called through ctypes, which releases the GIL: batch shards on different threads run in
 * parallel. kernels.py refuses a library whose digitlab_kernels_abi() is not the number it
 * expects: bump DIGITLAB_KERNELS_ABI (here and there) whenever a signature or layout changes.
 */
#include <stddef.h>
#include <string.h>

#define DIGITLAB_KERNELS_ABI 4

int digitlab_kernels_abi(void) { return DIGITLAB_KERNELS_ABI; }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 \
    && defined(__ELF__) && defined(__GLIBC__)
#define DISPATCH 1
#else
#define DISPATCH 0
#endif

/* Unaligned vector load and store (memcpy of a constant size compiles to one instruction). */
#define LOAD(T, p) ({ T v_; memcpy(&v_, (p), sizeof v_); v_; })
#define STORE(p, v) do { __typeof__(v) v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)

/* The backward's loop over the batch, in cpr_bwd_CI_CO's scope; stamped twice, with and without
 * the input gradient: a branch on it inside the loop slowed the first layer's backward (which
 * never needs it) by 1.5x. */
#define BWD_LOOP(CI, CO, WITH_DX)                                                                  \
{                                                                                                  \
    for (int n = 0; n < N; n++) {                                                                  \
        const float *xn = x + (size_t)n * H * W * (CI);                                            \
        float *dxn = (WITH_DX) ? dx + (size_t)n * H * W * (CI) : NULL;                             \
        for (int pi = 0; pi < PH; pi++) {                                                          \
            for (int pj = 0; pj < PW; pj++) {                                                      \
                const size_t o = (((size_t)n * PH + pi) * PW + pj) * (CO);                         \
                const vo gm = (vo)((io)LOAD(vo, g + o) & (LOAD(vo, out + o) > (vo){0}));           \
                dbias += gm;                                                                       \
                io av;                                                                             \
                for (int c = 0; c < (CO); c++) av[c] = arg[o + c];                                 \
                /* per pool cell q, the channels that q won and that have a gradient, in channel   \
                   order: the input gradient loops over them, with no branch per channel (a test   \
                   per channel mispredicted, and the backward took 1.6x as long) */                \
                int cnt[4] = {0, 0, 0, 0};                                                         \
                unsigned char lst[4][CO];                                                          \
                if (WITH_DX)                                                                       \
                    for (int c = 0; c < (CO); c++) {                                               \
                        const int q = av[c];                                                       \
                        lst[q][cnt[q]] = (unsigned char)c;                                         \
                        cnt[q] += gm[c] != 0.0f;                                                   \
                    }                                                                              \
                for (int q = 0; q < 4; q++) {                                                      \
                    const vo gq = (vo)((io)gm & (av == q));  /* the channels q won */              \
                    const size_t off =                                                             \
                        ((size_t)(2 * pi + (q >> 1)) * W + 2 * pj + (q & 1)) * (CI);               \
                    if ((CI) > 1) {  /* the weight gradient after the row, tap by tap */           \
                        STORE(G + (pj * 4 + q) * (CO), gq);                                        \
                    } else {  /* the 9 taps' accumulators fit in registers */                      \
                        const float *xp = xn + off;                                                \
                        for (int ky = 0; ky < 3; ky++)                                             \
                            for (int kx = 0; kx < 3; kx++)                                         \
                                dw[ky * 3 + kx] += xp[ky * W + kx] * gq;                           \
                    }                                                                              \
                    if (WITH_DX) {                                                                 \
                        if (!cnt[q]) continue;                                                     \
                        vi patch[9] = {{0}};                                                       \
                        for (int k = 0; k < cnt[q]; k++) {                                         \
                            const int c = lst[q][k];                                               \
                            const float gv = gm[c];                                                \
                            for (int t = 0; t < 9; t++) patch[t] += gv * wt[c][t];                 \
                        }                                                                          \
                        float *dp = dxn + off;                                                     \
                        for (int ky = 0; ky < 3; ky++)                                             \
                            for (int kx = 0; kx < 3; kx++) {                                       \
                                float *d = dp + (ky * W + kx) * (CI);                              \
                                STORE(d, LOAD(vi, d) + patch[ky * 3 + kx]);                        \
                            }                                                                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            /* the row's weight gradient one tap at a time: its CI accumulators stay in registers  \
               (all 9 * CI at once spill, and each multiply-add loads and stores one: 2x slower);  \
               each sum still runs in its old order (image, row, column, cell), bit for bit */     \
            if ((CI) > 1)                                                                          \
                for (int t = 0; t < 9; t++) {                                                      \
                    vo acc[CI];                                                                    \
                    for (int ci = 0; ci < (CI); ci++) acc[ci] = dw[t * (CI) + ci];                 \
                    for (int pj = 0; pj < PW; pj++)                                                \
                        for (int q = 0; q < 4; q++) {                                              \
                            const vo gq = LOAD(vo, G + (pj * 4 + q) * (CO));                       \
                            const float *xk = xn + ((size_t)(2 * pi + (q >> 1) + t / 3) * W        \
                                                    + 2 * pj + (q & 1) + t % 3) * (CI);            \
                            for (int ci = 0; ci < (CI); ci++) acc[ci] += xk[ci] * gq;              \
                        }                                                                          \
                    for (int ci = 0; ci < (CI); ci++) dw[t * (CI) + ci] = acc[ci];                 \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
}

/* NP pool windows side by side (pj .. pj+NP-1), in the forward's scope: their 4 * NP conv outputs
 * are independent multiply-add chains, computed together so that the FMA unit's latency is hidden
 * (one output at a time, each chain waits on its own last multiply-add: 8->16 ran 2.5x slower).
 * Each output's sum runs in the same order as before (ky, kx, ci): the results are bit-identical.
 * Two windows at a time for CI > 1; for CI = 1 one (more ran slower). */
#define FWD_NP(CI) ((CI) == 1 ? 1 : 2)
#define FWD_PIXELS(CI, CO, NP)                                                                     \
{                                                                                                  \
    vo acc[NP][4];                                                                                 \
    for (int p = 0; p < (NP); p++)                                                                 \
        for (int q = 0; q < 4; q++) acc[p][q] = bias;                                              \
    const float *xp = xn + ((size_t)(2 * pi) * W + 2 * pj) * (CI);                                 \
    for (int ky = 0; ky < 3; ky++)                                                                 \
        for (int kx = 0; kx < 3; kx++)                                                             \
            for (int ci = 0; ci < (CI); ci++) {                                                    \
                const vo wv = w[(ky * 3 + kx) * (CI) + ci];                                        \
                for (int p = 0; p < (NP); p++)                                                     \
                    for (int q = 0; q < 4; q++) {                                                  \
                        const int at = (((q >> 1) + ky) * W + 2 * p + (q & 1) + kx) * (CI) + ci;   \
                        acc[p][q] += xp[at] * wv;                                                  \
                    }                                                                              \
            }                                                                                      \
    for (int p = 0; p < (NP); p++) {                                                               \
        vo best = acc[p][0];                                                                       \
        io a = {0};                                                                                \
        for (int q = 1; q < 4; q++) {  /* strictly greater: ties keep the first, as torch does */  \
            io m = acc[p][q] > best;                                                               \
            best = (vo)(((io)acc[p][q] & m) | ((io)best & ~m));                                    \
            a = (q & m) | (a & ~m);                                                                \
        }                                                                                          \
        const size_t o = (((size_t)n * PH + pi) * PW + pj + p) * (CO);                             \
        STORE(out + o, (vo)((io)best & (best > (vo){0})));  /* ReLU */                             \
        for (int c = 0; c < (CO); c++) arg[o + c] = (unsigned char)a[c];                           \
    }                                                                                              \
}

/* cpr_fwd_CI_CO<ISA> and cpr_bwd_CI_CO<ISA>, declared with ATTR (an ISA's target attribute). */
#define KERNELS(CI, CO, ISA, ATTR)                                                                 \
                                                                                                   \
ATTR void cpr_fwd_##CI##_##CO##ISA(const float *x, const float *wk, const float *b, float *out,    \
                                   unsigned char *arg, int N, int H, int W) {                      \
    typedef float vo __attribute__((vector_size(4 * (CO))));  /* all output channels */            \
    typedef int io __attribute__((vector_size(4 * (CO))));                                         \
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;                                                  \
    vo w[9 * (CI)];  /* per tap and input channel, the CO weights */                               \
    for (int k = 0; k < 9 * (CI); k++) w[k] = LOAD(vo, wk + (CO) * k);                             \
    const vo bias = LOAD(vo, b);                                                                   \
    for (int n = 0; n < N; n++) {                                                                  \
        const float *xn = x + (size_t)n * H * W * (CI);                                            \
        for (int pi = 0; pi < PH; pi++) {                                                          \
            int pj = 0;                                                                            \
            for (; pj + FWD_NP(CI) <= PW; pj += FWD_NP(CI))                                        \
                FWD_PIXELS(CI, CO, FWD_NP(CI))                                                     \
            for (; pj < PW; pj++) FWD_PIXELS(CI, CO, 1)                                            \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
ATTR void cpr_bwd_##CI##_##CO##ISA(const float *x, const float *wkT, const float *out,             \
                                   const unsigned char *arg, const float *g, float *dwk,           \
                                   float *db, float *dx, int N, int H, int W) {                    \
    typedef float vo __attribute__((vector_size(4 * (CO))));                                       \
    typedef int io __attribute__((vector_size(4 * (CO))));                                         \
    typedef float vi __attribute__((vector_size(4 * (CI))));  /* all input channels */             \
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;                                                  \
    vo dw[9 * (CI)] = {{0}}, dbias = {0};                                                          \
    vi wt[CO][9];  /* wkT as, per output channel and tap, one CI-wide vector */                    \
    for (int c = 0; c < (CO); c++)                                                                 \
        for (int t = 0; t < 9; t++) wt[c][t] = LOAD(vi, wkT + (c * 9 + t) * (CI));                 \
    /* a pool row's masked cell gradients, for the tap-by-tap weight gradient (CI > 1) */          \
    float G[(CI) > 1 && PW > 0 ? 4 * (CO) * PW : 1];                                               \
    if (dx) BWD_LOOP(CI, CO, 1) else BWD_LOOP(CI, CO, 0)                                           \
    for (int k = 0; k < 9 * (CI); k++) STORE(dwk + (CO) * k, LOAD(vo, dwk + (CO) * k) + dw[k]);    \
    STORE(db, LOAD(vo, db) + dbias);                                                               \
}

#if DISPATCH
/* cpr_KIND_CI_CO is an ifunc bound, at load time, to the best of the three copies for this CPU. */
#define RESOLVE(KIND, CI, CO)                                                                      \
static __typeof__(cpr_##KIND##_##CI##_##CO##_baseline) *resolve_##KIND##_##CI##_##CO(void) {       \
    __builtin_cpu_init();  /* resolvers run before constructors */                                 \
    if (__builtin_cpu_supports("x86-64-v4")) return cpr_##KIND##_##CI##_##CO##_x86_64_v4;          \
    if (__builtin_cpu_supports("x86-64-v3")) return cpr_##KIND##_##CI##_##CO##_x86_64_v3;          \
    return cpr_##KIND##_##CI##_##CO##_baseline;                                                    \
}                                                                                                  \
__typeof__(cpr_##KIND##_##CI##_##CO##_baseline) cpr_##KIND##_##CI##_##CO                           \
    __attribute__((ifunc("resolve_" #KIND "_" #CI "_" #CO)));

#define CONV_POOL_RELU(CI, CO)                                                                     \
    KERNELS(CI, CO, _x86_64_v4, static __attribute__((target("arch=x86-64-v4"))))                  \
    KERNELS(CI, CO, _x86_64_v3, static __attribute__((target("arch=x86-64-v3"))))                  \
    KERNELS(CI, CO, _baseline, static)                                                             \
    RESOLVE(fwd, CI, CO)                                                                           \
    RESOLVE(bwd, CI, CO)
#else
#define CONV_POOL_RELU(CI, CO) KERNELS(CI, CO, , )
#endif

/* The specialisations kernels.py knows (its SHAPES): the blog CNN's two blocks. */
CONV_POOL_RELU(1, 8)    /* 28x28x1 -> 13x13x8 */
CONV_POOL_RELU(8, 16)   /* 13x13x8 -> 5x5x16 */


/* Per-image augmentation fused with the batch gather (training/augment.py does the same in torch
 * ops, for the GPU and for builds without this library): out[i] = warp(src[idx[i]]) / 255.
 *
 * src: the dataset, uint8 (N, H, W); theta: (n, 2, 3) sampling matrices mapping output to input
 * coordinates normalised to [-1, 1], as affine_grid(align_corners=False); bilinear sampling with
 * zeros outside, as grid_sample(padding_mode="zeros", align_corners=False). Then, where stroke[i]
 * is +1 (-1), each pixel becomes the mean of itself and the 3x3 max (min) around it, zeros
 * outside: a stroke about a pixel thicker (thinner). Images up to 64x64. */
static inline float fmaxf3(float a, float b, float c) { float m = a > b ? a : b; return m > c ? m : c; }
static inline float fminf3(float a, float b, float c) { float m = a < b ? a : b; return m < c ? m : c; }

#define AUG_MAX_PADDED ((64 + 2) * (64 + 2))

int augment_gather(const unsigned char *src, const long long *idx, int n, int H, int W,
                   const float *theta, const signed char *stroke, float *out) {
    if (H > 64 || W > 64) return -1;
    const int PW = W + 2;  /* the image with a one-pixel zero border: any corner pair inside it is readable */
    unsigned char padded[AUG_MAX_PADDED];
    float warped[AUG_MAX_PADDED];  /* also bordered, for the 3x3 max/min */
    float rows[AUG_MAX_PADDED];
    memset(padded, 0, (size_t)(H + 2) * PW);
    memset(warped, 0, sizeof(float) * (H + 2) * PW);
    for (int i = 0; i < n; i++) {
        const unsigned char *img = src + (size_t)idx[i] * H * W;
        /* copy in, and find the ink's bounding box (bordered coordinates): samples whose four
         * corners all miss it are zero, so most of the background costs a compare, not a lerp */
        int rmin = H + 1, rmax = 0, cmin = W + 1, cmax = 0;
        for (int r = 0; r < H; r++) {
            unsigned char *row = padded + (r + 1) * PW + 1;
            memcpy(row, img + r * W, W);
            for (int c = 0; c < W; c++) {
                if (row[c]) {
                    if (c + 1 < cmin) cmin = c + 1;
                    if (c + 1 > cmax) cmax = c + 1;
                    if (r + 1 < rmin) rmin = r + 1;
                    rmax = r + 1;
                }
            }
        }
        const float *t = theta + 6 * (size_t)i;
        /* pixel (r, c) samples input ((gx + 1) W - 1) / 2 with gx = t0 x + t1 y + t2, x = (2c + 1) / W - 1:
         * linear in c and r, so one add per pixel; +1 for the border */
        const float ax = t[0], bx = t[1] * W / H, ay = t[3] * H / W, by = t[4];
        const float cx = ((t[2] - t[0] * (1.0f - 1.0f / W) - t[1] * (1.0f - 1.0f / H) + 1.0f) * W - 1.0f) * 0.5f + 1.0f;
        const float cy = ((t[5] - t[3] * (1.0f - 1.0f / W) - t[4] * (1.0f - 1.0f / H) + 1.0f) * H - 1.0f) * 0.5f + 1.0f;
        const float xlo = (float)cmin - 1.0f, xhi = (float)cmax + 1.0f, ylo = (float)rmin - 1.0f, yhi = (float)rmax + 1.0f;
        float *o = out + (size_t)i * H * W;
        float *dst = stroke[i] ? warped + PW + 1 : o;
        const int dst_stride = stroke[i] ? PW : W;
        const float scale = 1.0f / 255.0f;
        for (int r = 0; r < H; r++) {
            float ix = cx + bx * r, iy = cy + by * r;
            float *d = dst + r * dst_stride;
            for (int c = 0; c < W; c++, ix += ax, iy += ay) {
                float v = 0.0f;
                if (ix > xlo && ix < xhi && iy > ylo && iy < yhi) {  /* inside the ink's box +1: in the bordered image */
                    const int x0 = (int)(ix + 16.0f) - 16, y0 = (int)(iy + 16.0f) - 16;  /* +16: the cast floors */
                    const float wx = ix - (float)x0, wy = iy - (float)y0;
                    const unsigned char *p = padded + y0 * PW + x0;
                    v = ((1.0f - wy) * ((1.0f - wx) * p[0] + wx * p[1]) + wy * ((1.0f - wx) * p[PW] + wx * p[PW + 1])) * scale;
                }
                d[c] = v;
            }
        }
        if (!stroke[i]) continue;
        /* (v + 3x3 max or min) / 2, zeros outside: two 1-D passes over the bordered image */
        if (stroke[i] > 0) {
            for (int r = 1; r <= H; r++)
                for (int c = 0; c < PW; c++)
                    rows[r * PW + c] = fmaxf3(warped[(r - 1) * PW + c], warped[r * PW + c], warped[(r + 1) * PW + c]);
            for (int r = 1; r <= H; r++)
                for (int c = 1; c <= W; c++)
                    o[(r - 1) * W + c - 1] = (warped[r * PW + c] + fmaxf3(rows[r * PW + c - 1], rows[r * PW + c], rows[r * PW + c + 1])) * 0.5f;
        } else {
            for (int r = 1; r <= H; r++)
                for (int c = 0; c < PW; c++)
                    rows[r * PW + c] = fminf3(warped[(r - 1) * PW + c], warped[r * PW + c], warped[(r + 1) * PW + c]);
            for (int r = 1; r <= H; r++)
                for (int c = 1; c <= W; c++)
                    o[(r - 1) * W + c - 1] = (warped[r * PW + c] + fminf3(rows[r * PW + c - 1], rows[r * PW + c], rows[r * PW + c + 1])) * 0.5f;
        }
        memset(warped, 0, sizeof(float) * (H + 2) * PW);  /* the border must stay zero for the next image */
    }
    return 0;
}
