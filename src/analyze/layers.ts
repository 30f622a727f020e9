/**
 * Cross-layer routing: how predictable layer ℓ+1's routing is from layer ℓ's, for a position's first-ranked expert.
 *
 * For a position t let A = its expert at rank 0 at layer ℓ (the router's first choice: highest probability for
 * top-k and top-p, smallest p-value for bh) and B = the same at ℓ+1; a position that selected no expert has the
 * symbol "none" (E). Over the analysed positions, with p the empirical (plug-in) joint distribution of (A, B):
 *   H(B)   = −Σ_b p(b) log₂ p(b)
 *   I(A;B) = Σ_{a,b} p(a,b) log₂ [p(a,b) / (p(a) p(b))]
 *   H(B|A) = H(B) − I(A;B)
 * in bits, and I/H(B) ∈ [0, 1] (1: ℓ+1's first choice is a function of ℓ's). The plug-in I is biased upwards by
 * about (E−1)²/(2N ln 2) bits when A and B are independent, so compare it with that on short traces.
 *
 * Rows of one position at different layers are not adjacent in a trace. The trace writer appends a batch layer by
 * layer, the same positions in the same order at every layer, so the i-th row of a run of layer-(ℓ+1) rows is the
 * i-th row of the run of layer-ℓ rows before it: pairing them needs one run (one batch) in memory, not the trace.
 * The pairing is checked on (doc, seq, pos).
 */
import { RoutelabError } from '../errors.js';
import type { TraceChunk } from '../trace/reader.js';

/** One run of consecutive rows of one layer: the positions' identities and first-ranked experts, grown as needed. */
class LayerRun {
  layer = -1;
  length = 0;
  doc = new Int32Array(1024);
  seq = new Int32Array(1024);
  pos = new Int32Array(1024);
  first = new Int32Array(1024);

  push(doc: number, seq: number, pos: number, first: number): void {
    if (this.length === this.doc.length) {
      for (const key of ['doc', 'seq', 'pos', 'first'] as const) {
        const grown = new Int32Array(2 * this.length);
        grown.set(this[key]);
        this[key] = grown;
      }
    }
    const i = this.length++;
    this.doc[i] = doc;
    this.seq[i] = seq;
    this.pos[i] = pos;
    this.first[i] = first;
  }
}

export class CrossLayerCounts {
  /** [(L−1) × S × S] joint counts of (A, B) for each adjacent pair ℓ → ℓ+1, S = E + 1 symbols. */
  readonly joint: Float64Array;
  private previous = new LayerRun();
  private current = new LayerRun();
  private file = '';

  constructor(
    readonly numLayers: number,
    readonly numExperts: number,
  ) {
    const S = numExperts + 1;
    this.joint = new Float64Array(Math.max(0, numLayers - 1) * S * S);
  }

  /** Start following the positions of another trace (counts keep adding up). */
  begin(file: string): void {
    this.file = file;
    this.previous.layer = this.current.layer = -1;
    this.previous.length = this.current.length = 0;
  }

  add(chunk: TraceChunk, maxK: number): void {
    const S = this.numExperts + 1;
    for (let r = 0; r < chunk.rows; r++) {
      const layer = chunk.layer[r];
      if (layer !== this.current.layer) this.startRun(layer);
      const i = this.current.length;
      const first = chunk.count[r] > 0 ? chunk.experts[r * maxK] : this.numExperts;
      this.current.push(chunk.doc[r], chunk.seq[r], chunk.pos[r], first);
      if (layer === 0) continue;
      const prev = this.previous;
      if (prev.layer !== layer - 1 || i >= prev.length || prev.doc[i] !== chunk.doc[r] || prev.seq[i] !== chunk.seq[r] || prev.pos[i] !== chunk.pos[r]) {
        throw this.misaligned(layer);
      }
      this.joint[((layer - 1) * S + prev.first[i]) * S + first]++;
    }
  }

  /** Call after the trace's last chunk: its last batch must have reached the last layer too. */
  finish(): void {
    this.startRun(0);
  }

  private startRun(layer: number): void {
    const done = this.current;
    // A run of layer ℓ+1 must pair with every row of the run of ℓ before it.
    if (done.layer > 0 && done.length !== this.previous.length) throw this.misaligned(done.layer);
    if (layer !== 0 && layer !== done.layer + 1) throw this.misaligned(layer);
    if (layer === 0 && done.layer >= 0 && done.layer !== this.numLayers - 1) throw this.misaligned(done.layer + 1);
    this.current = this.previous;
    this.previous = done;
    this.current.layer = layer;
    this.current.length = 0;
  }

  private misaligned(layer: number): RoutelabError {
    return new RoutelabError(this.file, `its layer-${layer} rows do not repeat the positions of the layer-${layer - 1} rows before them in the same order; ` +
      'expected the order routelab\'s trace writer uses (each batch layer by layer), so positions cannot be followed across layers');
  }
}

export interface LayerPair {
  readonly from: number; // ℓ
  readonly positions: number;
  readonly entropyNext: number; // H(B)
  readonly mutualInformation: number; // I(A;B)
  readonly conditionalEntropy: number; // H(B|A)
}

export function crossLayer(counts: CrossLayerCounts): LayerPair[] {
  const S = counts.numExperts + 1;
  const pairs: LayerPair[] = [];
  for (let l = 0; l + 1 < counts.numLayers; l++) {
    const joint = counts.joint.subarray(l * S * S, (l + 1) * S * S);
    const pa = new Float64Array(S);
    const pb = new Float64Array(S);
    let n = 0;
    for (let a = 0; a < S; a++) {
      for (let b = 0; b < S; b++) {
        pa[a] += joint[a * S + b];
        pb[b] += joint[a * S + b];
        n += joint[a * S + b];
      }
    }
    let hb = 0;
    let mi = 0;
    for (let b = 0; b < S; b++) if (pb[b] > 0) hb -= (pb[b] / n) * Math.log2(pb[b] / n);
    for (let a = 0; a < S; a++) {
      for (let b = 0; b < S; b++) {
        const c = joint[a * S + b];
        if (c > 0) mi += (c / n) * Math.log2((c * n) / (pa[a] * pb[b]));
      }
    }
    // Rounding can leave I a hair above H(B) when B is a function of A.
    mi = Math.min(Math.max(mi, 0), hb);
    pairs.push({ from: l, positions: n, entropyNext: hb, mutualInformation: mi, conditionalEntropy: hb - mi });
  }
  return pairs;
}
