/**
 * The routing trace file (`*_routing.parquet`, format `routelab.trace/1`): one Parquet row per (scored position,
 * layer), written in row groups as evaluation proceeds.
 *
 * Columns (all REQUIRED):
 *   doc     INT32   document index in the task's order (TaskDoc.index)
 *   seq     INT32   scoring unit of the document (a distinct model input: a rolling window, or a request's input)
 *   pos     INT32   stream index of the input token (stream = [prefix] + document for rolling requests, so pos is
 *                   also the index of the document token this position predicts; context ++ continuation for
 *                   loglikelihood requests, before left truncation)
 *   token   INT32   the input token id at this position (what the router saw; decode it for display)
 *   layer   INT32   ℓ, the MoE layer's index among the model's MoE layers (meta.moeLayers[ℓ] is its decoder layer)
 *   count   INT32   c[t, ℓ], the number of selected experts
 *   experts BYTE_ARRAY  the c selected expert ids in the router's order, 1 byte each (E ≤ 256) or uint16 LE
 *   weights BYTE_ARRAY  their c weights as IEEE float16 LE (relative error ≤ 2⁻¹¹; full traces keep exact logits)
 *   router_logits BYTE_ARRAY  (full only) the E router logits, float32 LE
 *   p_values      BYTE_ARRAY  (full only) the E p-values, float32 LE, when the router reports them (bh); else empty
 *
 * File key-value metadata: `routelab.trace` = JSON of TraceMeta.
 */
export const TRACE_FORMAT = 'routelab.trace/1';
export const TRACE_META_KEY = 'routelab.trace';

export type TraceLevel = 'off' | 'counts' | 'full';
export const TRACE_LEVELS: readonly TraceLevel[] = ['off', 'counts', 'full'];

export interface TraceMeta {
  readonly format: typeof TRACE_FORMAT;
  readonly level: Exclude<TraceLevel, 'off'>;
  readonly numLayers: number; // L, MoE layers (dense layers have no router)
  /** Decoder-layer index of each MoE layer; absent in traces of models whose every layer is MoE. */
  readonly moeLayers?: readonly number[];
  readonly numExperts: number; // E
  readonly minK: number;
  readonly maxK: number;
  /** Bytes per expert id in `experts`: 1 or 2. */
  readonly expertBytes: 1 | 2;
  readonly router: string;
  readonly config: string;
  readonly task: string;
  readonly model: string;
  readonly routelabVersion: string;
}

// float32 ↔ float16 (IEEE binary16), round to nearest even.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++; // may carry into the exponent: still correct
  e = half;
  return sign | e;
}

export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
