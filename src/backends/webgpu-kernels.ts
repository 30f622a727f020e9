/**
 * WGSL sources of the webgpu backend. Every kernel accumulates in float32 in a fixed order (no float atomics), so
 * a run is bit-reproducible. Weights arrive in their stored dtype: BF16 and F16 as packed u32 pairs (element i is
 * the low half of word i/2 when i is even) widened exactly in the shader, F32 as is.
 *
 * Elementwise kernels run 256 invocations per workgroup over a 2-D grid of workgroups (a 1-D grid is capped at
 * 65535), so the flat index is x + y · (workgroups in x) · 256.
 */
import type { WeightDtype } from '../model/tensor.js';

/** The WGSL declaration of weight binding `binding` named `name`, and `load_<name>(i) -> f32` for element i. */
function weightAccess(dtype: WeightDtype, binding: number, name: string): string {
  if (dtype === 'F32') {
    return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn load_${name}(i: u32) -> f32 { return ${name}[i]; }`;
  }
  const half = `((${name}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu)`;
  if (dtype === 'BF16') {
    // bf16 is the top half of a float32: widening is a shift.
    return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn load_${name}(i: u32) -> f32 { return bitcast<f32>(${half} << 16u); }`;
  }
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn load_${name}(i: u32) -> f32 { return half_to_f32(${half}); }
${HALF_TO_F32}`;
}

/** Exact float16 → float32 for every pattern (subnormals, infinities, NaN), not relying on unpack2x16float. */
const HALF_TO_F32 = `fn half_to_f32(h: u32) -> f32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, s != 0u);
  }
  if (e == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}`;

const FLAT = `@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u`;
const FLAT_INDEX = `let i = g.x + g.y * nw.x * 256u;`;

/** out[t, c] = table[ids[t], c] for the ids that fall in this chunk of table rows [row0, row0 + rows). */
export function embedKernel(dtype: WeightDtype): string {
  return `struct P { n: u32, cols: u32, row0: u32, rows: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
${weightAccess(dtype, 3, 'tab')}
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  let t = i / p.cols;
  let c = i % p.cols;
  let id = ids[t];
  if (id < p.row0 || id >= p.row0 + p.rows) { return; }
  outp[i] = load_tab((id - p.row0) * p.cols + c);
}`;
}

export const GATHER_ROWS = `struct P { n: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> outp: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  let r = i / p.cols;
  outp[i] = x[rows[r] * p.cols + i % p.cols];
}`;

export const ADD = `struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  x[i] = x[i] + y[i];
}`;

export const CLAMP = `struct P { n: u32, limit: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  x[i] = min(p.limit, max(-p.limit, x[i]));
}`;

export const SCALE = `struct P { n: u32, factor: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  x[i] = x[i] * p.factor;
}`;

/** x[i] += bias[(base + i) % cols]: `base` is the flat index of element 0 of this block of x. */
export function biasKernel(dtype: WeightDtype): string {
  return `struct P { n: u32, cols: u32, base: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
${weightAccess(dtype, 2, 'bias')}
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; }
  x[i] = x[i] + load_bias((p.base + i) % p.cols);
}`;
}

/** The columns of one part that gatherCols takes: idx = [count, 2] (output column, column of this part). */
export const GATHER_COLS = `struct P { n: u32, count: u32, inCols: u32, outCols: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> outp: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; } // n = rows · count
  let r = i / p.count;
  let m = i % p.count;
  outp[r * p.outCols + idx[2u * m]] = x[r * p.inCols + idx[2u * m + 1u]];
}`;

/**
 * Rotary embedding of the columns offset … offset + 2·pairs − 1 of each head: pair j is (j·stride, j·stride + gap)
 * within them (stride 1, gap pairs for rotate-half; stride 2, gap 1 for adjacent pairs). cos/sin [T, 2, pairs] come
 * from the host (float32 angles and values, scaled, exactly the reference's).
 */
export const ROPE = `struct P { n: u32, heads: u32, pairs: u32, cols: u32, headWidth: u32, offset: u32, stride: u32, gap: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>; // [T, 2, pairs]: cos then sin
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; } // n = T · heads · pairs
  let j = i % p.pairs;
  let h = (i / p.pairs) % p.heads;
  let r = i / (p.pairs * p.heads);
  let ia = r * p.cols + h * p.headWidth + p.offset + j * p.stride;
  let ib = ia + p.gap;
  let c = cs[r * 2u * p.pairs + j];
  let s = cs[r * 2u * p.pairs + p.pairs + j];
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * c - b * s;
  x[ib] = b * c + a * s;
}`;

/**
 * One workgroup per run of `width` columns (a whole row, or one head of it: runs are contiguous, so x is read as
 * [runs, width]); the sum of squares is reduced in a fixed tree order.
 */
export function rmsNormKernel(dtype: WeightDtype): string {
  return `struct P { runs: u32, width: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
${weightAccess(dtype, 3, 'gain')}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u,
    @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nw.x;
  let off = r * p.width;
  var ss = 0.0;
  if (r < p.runs) {
    for (var c = lid; c < p.width; c += 256u) { let v = x[off + c]; ss += v * v; }
  }
  red[lid] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (r >= p.runs) { return; }
  let inv = 1.0 / sqrt(red[0] / f32(p.width) + p.eps);
  for (var c = lid; c < p.width; c += 256u) { outp[off + c] = load_gain(c) * (x[off + c] * inv); }
}`;
}

/** How a matmul reads its input rows and writes its output rows. */
export type MatmulMode =
  | 'plain' // out[t, col0 + n] = Σ_k x[t, k] W[n, k]
  | 'gateup' // x rows gathered through idx; out[t, n] = silu(x·Gᵀ) ⊙ (x·Uᵀ)
  | 'scatter'; // out[idx[t], n] += wts[t] · (x·Wᵀ)[t, n]

export const MM_TILE_T = 16;
export const MM_TILE_N = 64;

/**
 * Tiled x · Wᵀ over one chunk of weight rows: a 16 × 64 output tile per workgroup of 16 × 16 invocations (each
 * owns one row and four columns n = lx + 16 j), K in steps of 32 through workgroup memory. Each output is one
 * sequential sum over k, so results do not depend on the tiling or the device.
 */
export function matmulKernel(dtype: WeightDtype, mode: MatmulMode): string {
  const two = mode === 'gateup';
  return `struct P { T: u32, K: u32, N: u32, outStride: u32, col0: u32, rowOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
${weightAccess(dtype, 3, 'w')}
${mode === 'plain' ? '' : '@group(0) @binding(4) var<storage, read> idx: array<u32>;'}
${two ? weightAccess(dtype, 5, 'w2') : ''}
${mode === 'scatter' ? '@group(0) @binding(5) var<storage, read> wts: array<f32>;' : ''}
var<workgroup> xs: array<f32, 512>; // [16][32]
var<workgroup> ws: array<f32, 2112>; // [64][33]
${two ? 'var<workgroup> ws2: array<f32, 2112>;' : ''}
@compute @workgroup_size(16, 16) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u,
    @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * 64u;
  let t0 = wid.y * 16u;
  var acc = vec4f(0.0);
  ${two ? 'var acc2 = vec4f(0.0);' : ''}
  for (var k0 = 0u; k0 < p.K; k0 += 32u) {
    for (var r = 0u; r < 2u; r++) {
      let e = lid + r * 256u;
      let t = t0 + e / 32u;
      let k = k0 + e % 32u;
      var v = 0.0;
      if (t < p.T && k < p.K) {
        ${mode === 'gateup' ? 'let row = idx[p.rowOff + t];' : 'let row = t;'}
        v = x[row * p.K + k];
      }
      xs[e] = v;
    }
    for (var r = 0u; r < 8u; r++) {
      let e = lid + r * 256u;
      let n = e / 32u;
      let kk = e % 32u;
      let k = k0 + kk;
      var v = 0.0;
      ${two ? 'var v2 = 0.0;' : ''}
      if (n0 + n < p.N && k < p.K) {
        v = load_w((n0 + n) * p.K + k);
        ${two ? 'v2 = load_w2((n0 + n) * p.K + k);' : ''}
      }
      ws[n * 33u + kk] = v;
      ${two ? 'ws2[n * 33u + kk] = v2;' : ''}
    }
    workgroupBarrier();
    let kn = min(32u, p.K - k0);
    for (var kk = 0u; kk < kn; kk++) {
      let xv = xs[l.y * 32u + kk];
      let wv = vec4f(ws[l.x * 33u + kk], ws[(l.x + 16u) * 33u + kk], ws[(l.x + 32u) * 33u + kk], ws[(l.x + 48u) * 33u + kk]);
      acc += xv * wv;
      ${two ? 'acc2 += xv * vec4f(ws2[l.x * 33u + kk], ws2[(l.x + 16u) * 33u + kk], ws2[(l.x + 32u) * 33u + kk], ws2[(l.x + 48u) * 33u + kk]);' : ''}
    }
    workgroupBarrier();
  }
  let t = t0 + l.y;
  if (t >= p.T) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + l.x + 16u * j;
    if (n < p.N) {
      ${mode === 'plain' ? 'outp[t * p.outStride + p.col0 + n] = acc[j];' : ''}
      ${mode === 'gateup' ? 'let gv = acc[j]; outp[t * p.outStride + p.col0 + n] = (gv / (1.0 + exp(-gv))) * acc2[j];' : ''}
      ${mode === 'scatter' ? 'let o = idx[p.rowOff + t] * p.outStride + p.col0 + n; outp[o] = outp[o] + acc[j] * wts[p.rowOff + t];' : ''}
    }
  }
}`;
}

/** Rows of x handled by the matrix-vector kernel (decode steps, last-token logits). */
export const GEMV_MAX_T = 4;

/**
 * x · Wᵀ for at most 4 rows of x: one invocation per weight row n, a sequential sum over k per output (the same
 * order as the tiled kernel), no workgroup memory or barriers.
 */
export function gemvKernel(dtype: WeightDtype): string {
  return `struct P { T: u32, K: u32, N: u32, outStride: u32, col0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
${weightAccess(dtype, 3, 'w')}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  if (n >= p.N) { return; }
  var acc = vec4f(0.0);
  let base = n * p.K;
  for (var k = 0u; k < p.K; k++) {
    let wv = load_w(base + k);
    acc += wv * vec4f(x[k], x[min(1u, p.T - 1u) * p.K + k], x[min(2u, p.T - 1u) * p.K + k], x[min(3u, p.T - 1u) * p.K + k]);
  }
  for (var t = 0u; t < p.T; t++) { outp[t * p.outStride + p.col0 + n] = acc[t]; }
}`;
}

/**
 * Write each token's new k, v rows into its sequence's cache slots; tok = [T, 2] (sequence, position). One
 * invocation per element of the token's key row followed by its value row (widths KW, VW).
 */
export const KV_APPEND = `struct P { n: u32, KW: u32, VW: u32, capacity: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> keys: array<f32>;
@group(0) @binding(4) var<storage, read_write> values: array<f32>;
@group(0) @binding(5) var<storage, read> tok: array<u32>;
@compute @workgroup_size(256) fn main(${FLAT}) {
  ${FLAT_INDEX}
  if (i >= p.n) { return; } // n = T · (KW + VW)
  let t = i / (p.KW + p.VW);
  let c = i % (p.KW + p.VW);
  let slot = tok[2u * t] * p.capacity + tok[2u * t + 1u];
  if (c < p.KW) {
    keys[slot * p.KW + c] = k[t * p.KW + c];
  } else {
    values[slot * p.VW + c - p.KW] = v[t * p.VW + c - p.KW];
  }
}`;

/** The widest query/key head and value head the attention kernel takes. */
export const ATTENTION_MAX_DIM = 256;

/**
 * Causal attention, one workgroup of 64 per (query head, token): the visible keys (all earlier positions of the
 * sequence, or the last `window` of them when window > 0) in blocks of 64 (one score per invocation), softmax online
 * over the blocks in float32, each invocation owning output dims d = lid + 64 r (q/k head hd ≤ 256, value head
 * vd ≤ 256).
 */
export const ATTENTION = `struct P { group: u32, hd: u32, vd: u32, qWidth: u32, oWidth: u32, KW: u32, VW: u32, capacity: u32, scale: f32, window: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> outp: array<f32>;
@group(0) @binding(5) var<storage, read> tok: array<u32>;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> info: vec2u;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  if (lid == 0u) { info = vec2u(tok[2u * t], tok[2u * t + 1u]); }
  let qOff = t * p.qWidth + h * p.hd;
  for (var d = lid; d < p.hd; d += 64u) { qs[d] = q[qOff + d]; }
  let bp = workgroupUniformLoad(&info);
  let end = bp.y + 1u; // keys first … end − 1 are visible
  let first = select(0u, end - min(end, p.window), p.window > 0u);
  let kBase = bp.x * p.capacity * p.KW + (h / p.group) * p.hd;
  let vBase = bp.x * p.capacity * p.VW + (h / p.group) * p.vd;
  var m = -3.0e38;
  var l = 0.0;
  var acc = vec4f(0.0);
  for (var c = first; c < end; c += 64u) {
    let j = c + lid;
    var s = -3.0e38;
    if (j < end) {
      var dot = 0.0;
      let kOff = kBase + j * p.KW;
      for (var d = 0u; d < p.hd; d++) { dot += qs[d] * keys[kOff + d]; }
      s = dot * p.scale;
    }
    sc[lid] = s;
    workgroupBarrier();
    let n = min(64u, end - c);
    var cm = m;
    for (var i = 0u; i < n; i++) { cm = max(cm, sc[i]); }
    workgroupBarrier();
    sc[lid] = exp(s - cm); // 0 past the visible keys
    workgroupBarrier();
    let corr = exp(m - cm);
    l *= corr;
    acc *= corr;
    for (var i = 0u; i < n; i++) {
      let e = sc[i];
      l += e;
      let vOff = vBase + (c + i) * p.VW;
      for (var r = 0u; r < 4u; r++) {
        let d = lid + 64u * r;
        if (d < p.vd) { acc[r] += e * values[vOff + d]; }
      }
    }
    m = cm;
    workgroupBarrier();
  }
  let oOff = t * p.oWidth + h * p.vd;
  for (var r = 0u; r < 4u; r++) {
    let d = lid + 64u * r;
    if (d < p.vd) { outp[oOff + d] = acc[r] / l; }
  }
}`;
