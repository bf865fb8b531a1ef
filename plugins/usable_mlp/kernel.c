/* One training epoch of an ensemble of MLP decoders (usable's mlp/linear family), member by member.
 *
 * Every member (a dataset, seed, beta triple) trains its own n-source decoders on its own batch
 * order, so members are independent: this kernel runs member e's whole epoch (forward, loss,
 * divergence, backward, optimiser update, batch-norm running statistics) before member e+1, with
 * its weights, optimiser state and activations resident in cache. A member's numbers therefore do
 * not depend on which other members share the call. Arithmetic follows usable's eager path
 * (core/usable/loop.py and plugins/usable_mlp/mlp.py) operation by operation in float32; only
 * summation order differs (tests compare them to float tolerance).
 *
 * Layout (all float32, C-contiguous, members first; activations inside are feature-major): per source s and linear layer l, W (E, in, out)
 * and b (E, 1, out); hidden layers with batch norm add gamma, beta, running mean and running var
 * (E, 1, out). Gradients live in the same layout; optimiser state buffers mirror the flat parameter
 * buffer, so a state element sits at the same offset as its parameter.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_SGD = 0, OPT_ADAM = 1, OPT_ADAMW = 2 };
enum { DIV_NONE = 0, DIV_L1 = 1, DIV_L2SQ = 2, DIV_L2 = 3, DIV_JS = 4, DIV_SKL = 5, DIV_HELL = 6, DIV_HELLSQ = 7, DIV_L1S = 8 };
enum { FORM_PAIRWISE = 0, FORM_CONSENSUS = 1 };

#define MAXS 16    /* sources */
#define MAXL 16    /* linear layers per source */

typedef struct {
    float *W, *b, *gW, *gb, *gamma, *beta, *ggamma, *gbeta, *rmean, *rvar;
    int in, out;
} Layer;

/* ---------------------------------------------------------------------------- divergences */
/* d(p, q) per sample (reducing K) and its gradients dp, dq (added, times w). The clamps and
 * square-root guards are those of plugins/usable_divergences/functions.py. */
static const float EPS_LOG = 1e-12f, TINY = 1e-30f, LN2 = 0.6931471805599453f;

static float clampf(float x, float lo) { return x < lo ? lo : x; }
static float sqrt0(float x) { return x > 0 ? sqrtf(clampf(x, TINY)) : 0.0f; }
static float dsqrt0(float x) { return x > TINY ? 0.5f / sqrtf(x) : 0.0f; }  /* d/dx of sqrt0, 0 where clamped */

static float divergence(int kind, float scale, float smooth, const float *p, const float *q, float *dp, float *dq,
                        float w, int K) {
    float d = 0.0f;
    switch (kind) {
    case DIV_L1S:  /* Σ_k sqrt(t² + s²) − s: |t| with a smooth bottom of width s */
        for (int k = 0; k < K; k++) {
            float t = p[k] - q[k], r = sqrtf(t * t + smooth * smooth);
            d += r - smooth;
            float g = w * scale * t / r;
            dp[k] += g; dq[k] -= g;
        }
        return d * scale;
    case DIV_L1:
        for (int k = 0; k < K; k++) {
            float t = p[k] - q[k];
            d += fabsf(t);
            float s = (t > 0) - (t < 0);
            dp[k] += w * scale * s; dq[k] -= w * scale * s;
        }
        return d * scale;
    case DIV_L2SQ:
    case DIV_L2: {
        for (int k = 0; k < K; k++) { float t = p[k] - q[k]; d += t * t; }
        float outer = kind == DIV_L2SQ ? 1.0f : dsqrt0(d);
        for (int k = 0; k < K; k++) {
            float g = w * outer * 2.0f * (p[k] - q[k]);
            dp[k] += g; dq[k] -= g;
        }
        return kind == DIV_L2SQ ? d : sqrt0(d);
    }
    case DIV_JS:
        for (int k = 0; k < K; k++) {
            float m = 0.5f * (p[k] + q[k]);
            float lp = logf(clampf(p[k], EPS_LOG)), lq = logf(clampf(q[k], EPS_LOG)), lm = logf(clampf(m, EPS_LOG));
            d += 0.5f * p[k] * (lp - lm) + 0.5f * q[k] * (lq - lm);
            /* d/dp [½p(lp − lm) + ½q(lq − lm)], logs of clamped values: their derivative is 0 below the clamp */
            float dlp = p[k] > EPS_LOG ? 1.0f / p[k] : 0.0f, dlm = m > EPS_LOG ? 0.5f / m : 0.0f;
            float gp = 0.5f * (lp - lm) + 0.5f * p[k] * (dlp - dlm) - 0.5f * q[k] * dlm;
            float dlq = q[k] > EPS_LOG ? 1.0f / q[k] : 0.0f;
            float gq = 0.5f * (lq - lm) + 0.5f * q[k] * (dlq - dlm) - 0.5f * p[k] * dlm;
            dp[k] += w * gp / LN2; dq[k] += w * gq / LN2;
        }
        return d / LN2;
    case DIV_SKL:
        for (int k = 0; k < K; k++) {
            float lp = logf(clampf(p[k], EPS_LOG)), lq = logf(clampf(q[k], EPS_LOG));
            d += p[k] * (lp - lq) + q[k] * (lq - lp);
            float dlp = p[k] > EPS_LOG ? 1.0f / p[k] : 0.0f, dlq = q[k] > EPS_LOG ? 1.0f / q[k] : 0.0f;
            dp[k] += w * ((lp - lq) + (p[k] - q[k]) * dlp);
            dq[k] += w * ((lq - lp) + (q[k] - p[k]) * dlq);
        }
        return d;
    case DIV_HELL:
    case DIV_HELLSQ: {
        float h2 = 0.0f;
        for (int k = 0; k < K; k++) { float t = sqrt0(p[k]) - sqrt0(q[k]); h2 += t * t; }
        h2 *= 0.5f;
        float outer = kind == DIV_HELLSQ ? 1.0f : dsqrt0(h2);
        for (int k = 0; k < K; k++) {
            float t = sqrt0(p[k]) - sqrt0(q[k]);
            dp[k] += w * outer * t * dsqrt0(p[k]);
            dq[k] -= w * outer * t * dsqrt0(q[k]);
        }
        return kind == DIV_HELLSQ ? h2 : sqrt0(h2);
    }
    }
    return 0.0f;
}


/* ---------------------------------------------------------------------------- small matrix products */
/* Activations are feature-major: row f of a (F, bp) block holds feature f for the batch, and bp
 * (the batch rounded up to 8) keeps every row aligned to whole vectors; padding columns are zero
 * in inputs and in gradients, so they add nothing to any sum over the batch.
 *
 * Register tiles (4 output rows × 16 samples, 8 vector accumulators) keep the partial sums out of
 * memory: the plain loop nest (one row at a time, reloading and storing it for every input
 * feature) measured 2.4× slower on the paper's [25-15-10] decoder. */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
static inline v8 ld(const float *p) { return *(const v8u *)p; }
static inline void st(float *p, v8 v) { *(v8u *)p = v; }
static inline v8 bc(float x) { return (v8){x, x, x, x, x, x, x, x}; }
static inline float hsum(v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* out[r][i] = init[r] + sum_c M[r*rs + c*cs] x[c][i], r < R, c < C, i < bp (bp a multiple of 8);
 * init may be NULL (zero). Forward: M = W (in, out) read as (out, in): rs = 1, cs = out.
 * Backward: dh = W dz: rs = out, cs = 1. */
static inline __attribute__((always_inline)) void mm_tile(int NR, const float *M, int rs, int cs, const float *init,
                                                          const float *x, float *out, int r0, int C, int bp) {
    int i0 = 0;
    for (; i0 + 16 <= bp; i0 += 16) {
        v8 a[4][2];
        for (int r = 0; r < NR; r++) a[r][0] = a[r][1] = bc(init ? init[r0 + r] : 0.0f);
        for (int c = 0; c < C; c++) {
            const v8 x0 = ld(x + (size_t)c * bp + i0), x1 = ld(x + (size_t)c * bp + i0 + 8);
            for (int r = 0; r < NR; r++) {
                const v8 m = bc(M[(size_t)(r0 + r) * rs + (size_t)c * cs]);
                a[r][0] += m * x0; a[r][1] += m * x1;
            }
        }
        for (int r = 0; r < NR; r++) { st(out + (size_t)(r0 + r) * bp + i0, a[r][0]); st(out + (size_t)(r0 + r) * bp + i0 + 8, a[r][1]); }
    }
    for (; i0 < bp; i0 += 8) {
        v8 a[4];
        for (int r = 0; r < NR; r++) a[r] = bc(init ? init[r0 + r] : 0.0f);
        for (int c = 0; c < C; c++) {
            const v8 x0 = ld(x + (size_t)c * bp + i0);
            for (int r = 0; r < NR; r++) a[r] += bc(M[(size_t)(r0 + r) * rs + (size_t)c * cs]) * x0;
        }
        for (int r = 0; r < NR; r++) st(out + (size_t)(r0 + r) * bp + i0, a[r]);
    }
}

static void mm(const float *M, int rs, int cs, const float *init, const float *x, float *out, int R, int C, int bp) {
    int r0 = 0;
    for (; r0 + 4 <= R; r0 += 4) mm_tile(4, M, rs, cs, init, x, out, r0, C, bp);
    switch (R - r0) {
    case 3: mm_tile(3, M, rs, cs, init, x, out, r0, C, bp); break;
    case 2: mm_tile(2, M, rs, cs, init, x, out, r0, C, bp); break;
    case 1: mm_tile(1, M, rs, cs, init, x, out, r0, C, bp); break;
    }
}

/* gW[k*O + o] = sum_i h[k][i] dz[o][i] (the weight gradient, (in, out)): tiles of 4 inputs × 2
 * outputs, one vector accumulator each, reduced across lanes once per tile. */
static inline __attribute__((always_inline)) void outer_tile(int NK, int NO, const float *h, const float *dz, float *gW,
                                                             int k0, int o0, int O, int bp) {
    v8 a[4][2];
    for (int k = 0; k < NK; k++) for (int o = 0; o < NO; o++) a[k][o] = bc(0.0f);
    for (int i = 0; i < bp; i += 8) {
        v8 d[2];
        for (int o = 0; o < NO; o++) d[o] = ld(dz + (size_t)(o0 + o) * bp + i);
        for (int k = 0; k < NK; k++) {
            const v8 hk = ld(h + (size_t)(k0 + k) * bp + i);
            for (int o = 0; o < NO; o++) a[k][o] += hk * d[o];
        }
    }
    for (int k = 0; k < NK; k++) for (int o = 0; o < NO; o++) gW[(size_t)(k0 + k) * O + o0 + o] = hsum(a[k][o]);
}

static void outer(const float *h, const float *dz, float *gW, int I, int O, int bp) {
    for (int o0 = 0; o0 < O; o0 += 2) {
        const int no = O - o0 >= 2 ? 2 : 1;
        int k0 = 0;
        for (; k0 + 4 <= I; k0 += 4) no == 2 ? outer_tile(4, 2, h, dz, gW, k0, o0, O, bp) : outer_tile(4, 1, h, dz, gW, k0, o0, O, bp);
        for (; k0 < I; k0++) no == 2 ? outer_tile(1, 2, h, dz, gW, k0, o0, O, bp) : outer_tile(1, 1, h, dz, gW, k0, o0, O, bp);
    }
}

/* ---------------------------------------------------------------------------- optimiser */
/* torch.optim's single-tensor arithmetic (see core/usable/loop.py, Optimiser): Python floats are
 * doubles there, cast to float32 where they meet a tensor. */
static void update(int opt, float *p, const float *g, float *s1, float *s2, int64_t n, double lr, double momentum,
                   double wd, int first, double t) {
    if (opt == OPT_SGD) {
        const float a = (float)(-lr), m = (float)momentum, w = (float)wd;
        for (int64_t i = 0; i < n; i++) {
            float gi = w != 0.0f ? g[i] + w * p[i] : g[i];
            if (m != 0.0f) {
                s1[i] = first ? gi : s1[i] * m + gi;
                gi = s1[i];
            }
            p[i] = p[i] + a * gi;
        }
        return;
    }
    const float w1 = (float)(1.0 - 0.9), b2 = (float)0.999, w2 = (float)(1.0 - 0.999), eps = (float)1e-8;
    const float step = (float)(-(lr / (1.0 - pow(0.9, t)))), bc2_sqrt = (float)sqrt(1.0 - pow(0.999, t));
    const float decay = (float)(1.0 - lr * wd), w = (float)wd;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        if (opt == OPT_ADAMW) p[i] = p[i] * decay;
        else if (w != 0.0f) gi = gi + w * p[i];
        s1[i] = s1[i] + w1 * (gi - s1[i]);
        s2[i] = s2[i] * b2 + w2 * gi * gi;
        const float denom = sqrtf(s2[i]) / bc2_sqrt + eps;
        p[i] = p[i] + step * (s1[i] / denom);
    }
}


/* Per source, per linear layer: W b gW gb, then gamma beta ggamma gbeta rmean rvar when the layer
 * is hidden and followed by batch norm. Returns the next pointer index; *maxw: widest layer. */
static int parse_layers(Layer lay[MAXS][MAXL], void **ptr, int q, const int64_t *dims, int S, int L, int bn, int *maxw) {
    for (int s = 0; s < S; s++) {
        for (int l = 0; l < L; l++) {
            Layer *y = &lay[s][l];
            y->in = dims[s * (L + 1) + l], y->out = dims[s * (L + 1) + l + 1];
            y->W = ptr[q++]; y->b = ptr[q++]; y->gW = ptr[q++]; y->gb = ptr[q++];
            y->gamma = y->beta = y->ggamma = y->gbeta = y->rmean = y->rvar = NULL;
            if (bn && l < L - 1) {
                y->gamma = ptr[q++]; y->beta = ptr[q++]; y->ggamma = ptr[q++]; y->gbeta = ptr[q++];
                y->rmean = ptr[q++]; y->rvar = ptr[q++];
            }
            if (y->out > *maxw) *maxw = y->out;
            if (y->in > *maxw) *maxw = y->in;
        }
    }
    return q;
}

/* ---------------------------------------------------------------------------- evaluation */
/* Logits of every member on a whole split in eval mode (batch norm from its running statistics,
 * as BatchedBatchNorm: beta + (z - mean) / sqrt(var + eps) * gamma), sample-major.
 * icfg: E S G N L K bn, then dims per source as in the epoch. fcfg: bn_eps.
 * ptr:  X[S] (G, N, in), member_dataset (E,) int32, out[S] (E, N, K), then the layers as in the
 * epoch (gradient pointers unused). Returns 0, or 1 when scratch memory cannot be had. */
int usable_mlp_predict(const int64_t *icfg, const double *fcfg, void **ptr) {
    const int E = icfg[0], S = icfg[1], N = icfg[3], L = icfg[4], K = icfg[5], bn = icfg[6];
    const int64_t *dims = icfg + 7;
    const float eps = fcfg[0];
    const int32_t *mdata = (const int32_t *)ptr[S];
    Layer lay[MAXS][MAXL];
    int maxw = K;
    parse_layers(lay, ptr, 2 * S + 1, dims, S, L, bn, &maxw);
    enum { CH = 256 };
    float *buf = malloc(sizeof(float) * (size_t)CH * maxw * 2);  /* two (features, CH) blocks, ping-pong */
    if (!buf) return 1;
    float *A = buf, *Bf = buf + (size_t)CH * maxw;
    for (int e = 0; e < E; e++) {
        const int g = mdata[e];
        for (int s = 0; s < S; s++) {
            const float *X = (const float *)ptr[s];
            float *out = (float *)ptr[S + 1 + s] + (int64_t)e * N * K;
            const int in0 = lay[s][0].in;
            for (int lo = 0; lo < N; lo += CH) {
                const int b = lo + CH <= N ? CH : N - lo, bp = (b + 7) & ~7;
                for (int i = 0; i < b; i++)
                    for (int k = 0; k < in0; k++) A[(size_t)k * bp + i] = X[((int64_t)g * N + lo + i) * in0 + k];
                for (int k = 0; k < in0; k++) for (int i = b; i < bp; i++) A[(size_t)k * bp + i] = 0.0f;
                float *h = A, *z = Bf;
                for (int l = 0; l < L; l++) {
                    Layer *y = &lay[s][l];
                    const int I = y->in, O = y->out;
                    mm(y->W + (int64_t)e * I * O, 1, O, y->b + (int64_t)e * O, h, z, O, I, bp);
                    if (l == L - 1) break;
                    if (bn) {
                        const float *ga = y->gamma + (int64_t)e * O, *be = y->beta + (int64_t)e * O;
                        const float *rm = y->rmean + (int64_t)e * O, *rv = y->rvar + (int64_t)e * O;
                        for (int o = 0; o < O; o++) {
                            const float iv = 1.0f / sqrtf(rv[o] + eps);
                            float *zo = z + (size_t)o * bp;
                            for (int i = 0; i < bp; i++) {
                                const float a = be[o] + ((zo[i] - rm[o]) * iv) * ga[o];
                                zo[i] = a > 0.0f ? a : 0.0f;
                            }
                        }
                    } else {
                        for (size_t i = 0; i < (size_t)bp * O; i++) z[i] = z[i] > 0.0f ? z[i] : 0.0f;
                    }
                    float *t = h; h = z; z = t;
                }
                for (int i = 0; i < b; i++)
                    for (int k = 0; k < K; k++) out[(int64_t)(lo + i) * K + k] = z[(size_t)k * bp + i];
            }
        }
    }
    free(buf);
    return 0;
}

/* ---------------------------------------------------------------------------- the epoch */
/* icfg: E S G N B L K bn opt div form first_step steps, then per source s: dims[0..L] (in ... K).
 * fcfg: lr momentum weight_decay bn_eps bn_momentum div_scale t(adam step before this epoch),
 *       then factors[steps] (β schedule per step), then beta[E], then the divergence's smoothing width.
 * ptr:  X[S], Y, perm, member_dataset, flat_param, state1, state2,
 *       then per source, per layer: W b gW gb [gamma beta ggamma gbeta rmean rvar if hidden and bn].
 * sums: (3 + S) x E doubles, batch-weighted epoch means of loss, divergence, β in force, CE_s (nats).
 * Returns 0, or 1 when scratch memory cannot be had. */
int usable_mlp_epoch(const int64_t *icfg, const double *fcfg, void **ptr, double *sums) {
    const int E = icfg[0], S = icfg[1], N = icfg[3], B = icfg[4], L = icfg[5], K = icfg[6], bn = icfg[7];
    const int opt = icfg[8], dkind = icfg[9], form = icfg[10], first_step = icfg[11], steps = icfg[12];
    const int64_t *dims = icfg + 13;
    const double lr = fcfg[0], mom = fcfg[1], wd = fcfg[2];
    const float bn_eps = fcfg[3], bn_m = fcfg[4], dscale = fcfg[5];
    const double t0 = fcfg[6];
    const double *factors = fcfg + 7, *betas = fcfg + 7 + steps;
    const float dsmooth = fcfg[7 + steps + E];
    const float *X[MAXS];
    for (int s = 0; s < S; s++) X[s] = (const float *)ptr[s];
    const int64_t *Y = (const int64_t *)ptr[S], *perm = (const int64_t *)ptr[S + 1];
    const int32_t *mdata = (const int32_t *)ptr[S + 2];
    float *flat = (float *)ptr[S + 3], *st1 = (float *)ptr[S + 4], *st2 = (float *)ptr[S + 5];
    Layer lay[MAXS][MAXL];
    int maxw = K;
    parse_layers(lay, ptr, S + 6, dims, S, L, bn, &maxw);
    /* scratch for one member and one batch: per source and layer the input h, pre-activations and
     * normalised values (xhat), the inverse sd; then probabilities and their gradients */
    const int Bp = (B + 7) & ~7;
    size_t per = (size_t)Bp * maxw;
    float *buf = malloc(sizeof(float) * (per * (size_t)S * (2 * L + 1) + (size_t)S * L * maxw + 2 * per + (size_t)B * K * (S + 1) * 2));
    if (!buf) return 1;
    float *H = buf;                                  /* [S][L+1][B*maxw]: layer inputs, H[l+1] = relu(bn(z)) */
    float *Z = H + per * S * (L + 1);                /* [S][L][B*maxw]: xhat for hidden layers, logits for the head */
    float *INV = Z + per * S * L;                    /* [S][L][maxw] */
    float *D1 = INV + (size_t)S * L * maxw, *D2 = D1 + per;  /* backward scratch */
    float *PR = D2 + per;                            /* [S+1][B*K] probabilities (+ consensus centre) */
    float *GP = PR + (size_t)B * K * (S + 1);        /* [S+1][B*K] d(β·D)/dp */
    for (int i = 0; i < (3 + S) * E; i++) sums[i] = 0.0;

    for (int e = 0; e < E; e++) {
        const int64_t *pe = perm + (int64_t)e * N;
        const int g = mdata[e];
        const double beta = betas[e];
        for (int st = 0; st < steps; st++) {
            const int lo = st * B, b = (lo + B <= N ? B : N - lo), bp = (b + 7) & ~7;
            const double w_batch = (double)b / N;
            const float beta_t = (float)(beta * factors[st]);
            double ce_sum = 0.0, div_sum = 0.0;
            /* ---- forward, every source. Activations are feature-major (F, b): the inner loops
             * run over the batch, contiguous, which the compiler vectorises. */
            for (int s = 0; s < S; s++) {
                float *h0 = H + per * (s * (L + 1));
                const int in0 = lay[s][0].in;
                for (int i = 0; i < b; i++) {
                    const float *xi = X[s] + ((int64_t)g * N + pe[lo + i]) * in0;
                    for (int k = 0; k < in0; k++) h0[(size_t)k * bp + i] = xi[k];
                }
                for (int k = 0; k < in0; k++) for (int i = b; i < bp; i++) h0[(size_t)k * bp + i] = 0.0f;
                for (int l = 0; l < L; l++) {
                    Layer *y = &lay[s][l];
                    const int I = y->in, O = y->out;
                    const float *W = y->W + (int64_t)e * I * O, *bb = y->b + (int64_t)e * O;
                    const float *h = H + per * (s * (L + 1) + l);
                    float *z = Z + per * (s * L + l);
                    mm(W, 1, O, bb, h, z, O, I, bp);
                    if (l == L - 1) break;
                    float *hn = H + per * (s * (L + 1) + l + 1), *inv = INV + (size_t)(s * L + l) * maxw;
                    if (bn) {
                        const float *ga = y->gamma + (int64_t)e * O, *be = y->beta + (int64_t)e * O;
                        float *rm = y->rmean + (int64_t)e * O, *rv = y->rvar + (int64_t)e * O;
                        for (int o = 0; o < O; o++) {
                            float *zo = z + (size_t)o * bp, *ho = hn + (size_t)o * bp;
                            float m = 0.0f, v = 0.0f;
                            #pragma omp simd reduction(+:m)
                            for (int i = 0; i < b; i++) m += zo[i];
                            m = m / b;
                            #pragma omp simd reduction(+:v)
                            for (int i = 0; i < b; i++) { float c = zo[i] - m; v += c * c; }
                            v = v / b;
                            const float iv = 1.0f / sqrtf(v + bn_eps);
                            inv[o] = iv;
                            for (int i = 0; i < b; i++) {
                                const float xh = (zo[i] - m) * iv;
                                zo[i] = xh;                                       /* keep xhat for backward */
                                const float a = be[o] + xh * ga[o];
                                ho[i] = a > 0.0f ? a : 0.0f;
                            }
                            for (int i = b; i < bp; i++) ho[i] = 0.0f;
                            if (b > 1) {                                          /* torch's running statistics */
                                rm[o] = rm[o] + bn_m * (m - rm[o]);
                                rv[o] = rv[o] + bn_m * (v * ((float)b / (b - 1)) - rv[o]);
                            }
                        }
                    } else {
                        for (size_t i = 0; i < (size_t)bp * O; i++) hn[i] = z[i] > 0.0f ? z[i] : 0.0f;
                    }
                }
                /* log-softmax of the logits (class-major (K, b)), cross-entropy, probabilities (b, K) */
                const float *lg = Z + per * (s * L + L - 1);
                float *pr = PR + (size_t)s * B * K;
                double ce = 0.0;
                for (int i = 0; i < b; i++) {
                    float mx = lg[i], se = 0.0f, *pi = pr + (size_t)i * K;
                    for (int k = 1; k < K; k++) mx = lg[(size_t)k * bp + i] > mx ? lg[(size_t)k * bp + i] : mx;
                    for (int k = 0; k < K; k++) se += (pi[k] = expf(lg[(size_t)k * bp + i] - mx));
                    const float lse = mx + logf(se), rse = 1.0f / se;
                    for (int k = 0; k < K; k++) pi[k] *= rse;                  /* one exp per class, not two */
                    ce += -(double)(lg[(size_t)Y[(int64_t)g * N + pe[lo + i]] * bp + i] - lse);
                }
                ce_sum += ce / b;
                sums[(3 + s) * E + e] += w_batch * (ce / b);
            }
            /* ---- divergence between the sources' predictions, and d(β·D)/dp */
            memset(GP, 0, sizeof(float) * (size_t)B * K * (S + 1));
            if (dkind != DIV_NONE && S > 1) {
                const float wsample = beta_t / b;
                float *cen = PR + (size_t)S * B * K, *gc = GP + (size_t)S * B * K;
                if (form == FORM_CONSENSUS) {
                    for (int i = 0; i < b * K; i++) {
                        float c = 0.0f;
                        for (int s = 0; s < S; s++) c += PR[(size_t)s * B * K + i];
                        cen[i] = c / S;
                    }
                }
                for (int i = 0; i < b; i++) {
                    double di = 0.0;
                    if (form == FORM_PAIRWISE) {
                        const int pairs = S * (S - 1) / 2;
                        for (int a = 0; a < S; a++)
                            for (int c = a + 1; c < S; c++)
                                di += divergence(dkind, dscale, dsmooth, PR + (size_t)a * B * K + (size_t)i * K,
                                                 PR + (size_t)c * B * K + (size_t)i * K, GP + (size_t)a * B * K + (size_t)i * K,
                                                 GP + (size_t)c * B * K + (size_t)i * K, wsample / pairs, K);
                        di /= pairs;
                    } else {
                        for (int a = 0; a < S; a++)
                            di += divergence(dkind, dscale, dsmooth, PR + (size_t)a * B * K + (size_t)i * K, cen + (size_t)i * K,
                                             GP + (size_t)a * B * K + (size_t)i * K, gc + (size_t)i * K, wsample / S, K);
                        di /= S;
                    }
                    div_sum += di;
                }
                if (form == FORM_CONSENSUS)  /* the centre is the mean of the predictions */
                    for (int s = 0; s < S; s++)
                        for (int i = 0; i < b * K; i++) GP[(size_t)s * B * K + i] += gc[i] / S;
                div_sum /= b;
            }
            const double loss = ce_sum / S + (double)beta_t * div_sum;
            sums[0 * E + e] += w_batch * loss;
            sums[1 * E + e] += w_batch * div_sum;
            sums[2 * E + e] += w_batch * beta_t;
            /* ---- backward, every source (feature-major gradients (F, b)) */
            for (int s = 0; s < S; s++) {
                const float *pr = PR + (size_t)s * B * K, *gp = GP + (size_t)s * B * K;
                float *dz = D1;
                for (int i = 0; i < b; i++) {
                    const int64_t yi = Y[(int64_t)g * N + pe[lo + i]];
                    float dot = 0.0f;
                    for (int k = 0; k < K; k++) dot += gp[(size_t)i * K + k] * pr[(size_t)i * K + k];
                    for (int k = 0; k < K; k++) {
                        const float p = pr[(size_t)i * K + k];
                        dz[(size_t)k * bp + i] = (p - (k == yi)) / ((float)S * b) + p * (gp[(size_t)i * K + k] - dot);
                    }
                }
                for (int k = 0; k < K; k++) for (int i = b; i < bp; i++) dz[(size_t)k * bp + i] = 0.0f;
                for (int l = L - 1; l >= 0; l--) {
                    Layer *y = &lay[s][l];
                    const int I = y->in, O = y->out;
                    const float *h = H + per * (s * (L + 1) + l);
                    float *gW = y->gW + (int64_t)e * I * O, *gb = y->gb + (int64_t)e * O;
                    for (int o = 0; o < O; o++) {
                        const float *dzo = dz + (size_t)o * bp;
                        v8 acc = bc(0.0f);
                        for (int i = 0; i < bp; i += 8) acc += ld(dzo + i);
                        gb[o] = hsum(acc);
                    }
                    outer(h, dz, gW, I, O, bp);
                    if (l == 0) break;
                    /* dh = W dz (feature-major), then back through relu and batch norm of layer l-1 */
                    const float *W = y->W + (int64_t)e * I * O;
                    float *dh = D2;
                    mm(W, O, 1, NULL, dz, dh, I, O, bp);
                    Layer *pl = &lay[s][l - 1];
                    const float *xh = Z + per * (s * L + l - 1), *hn = h;
                    for (size_t i = 0; i < (size_t)bp * I; i++) dh[i] = hn[i] <= 0.0f ? 0.0f : dh[i];  /* relu; a store per element vectorises, a conditional one does not */
                    if (bn) {
                        const float *ga = pl->gamma + (int64_t)e * I, *inv = INV + (size_t)(s * L + l - 1) * maxw;
                        float *gg = pl->ggamma + (int64_t)e * I, *gbe = pl->gbeta + (int64_t)e * I;
                        for (int k = 0; k < I; k++) {
                            const float *dhk = dh + (size_t)k * bp, *xk = xh + (size_t)k * bp;
                            float sg = 0.0f, sgx = 0.0f;
                            #pragma omp simd reduction(+:sg, sgx)
                            for (int i = 0; i < b; i++) { sg += dhk[i]; sgx += dhk[i] * xk[i]; }
                            gbe[k] = sg; gg[k] = sgx;
                            const float mg = sg / b, mgx = sgx / b, scale = ga[k] * inv[k];
                            float *out = D1 + (size_t)k * bp;
                            for (int i = 0; i < b; i++) out[i] = (dhk[i] - mg - xk[i] * mgx) * scale;
                            for (int i = b; i < bp; i++) out[i] = 0.0f;
                        }
                    } else {
                        memcpy(D1, dh, sizeof(float) * (size_t)bp * I);
                    }
                    dz = D1;
                }
            }
            const double t = t0 + st + 1;
            const int first = first_step && st == 0;
            for (int s = 0; s < S; s++)
                for (int l = 0; l < L; l++) {
                    Layer *y = &lay[s][l];
                    const int I = y->in, O = y->out;
                    float *tensors[4] = {y->W + (int64_t)e * I * O, y->b + (int64_t)e * O,
                                         y->gamma ? y->gamma + (int64_t)e * O : NULL, y->beta ? y->beta + (int64_t)e * O : NULL};
                    float *grads[4] = {y->gW + (int64_t)e * I * O, y->gb + (int64_t)e * O,
                                       y->ggamma ? y->ggamma + (int64_t)e * O : NULL, y->gbeta ? y->gbeta + (int64_t)e * O : NULL};
                    const int64_t count[4] = {(int64_t)I * O, O, O, O};
                    for (int j = 0; j < 4; j++) {
                        if (!tensors[j]) continue;
                        const int64_t off = tensors[j] - flat;
                        update(opt, tensors[j], grads[j], st1 + off, st2 + off, count[j], lr, mom, wd, first, t);
                    }
                }
        }
    }
    free(buf);
    return 0;
}
