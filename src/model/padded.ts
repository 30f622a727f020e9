import type { Router } from '../routers/router.js';
import type { MoeModel } from './model.js';

/**
 * A forward pass laid out like Hugging Face's outputs for a right-padded batch [B, S]: sequence b's token s at
 * row b·S + s. Positions past a sequence's end (padding) hold zeros and count zero experts.
 */
export interface PaddedOutputs {
  readonly batch: number; // B
  readonly length: number; // S = longest sequence
  readonly logits: Float32Array; // [B, S, V]
  readonly routerLogits: Float32Array; // [L_moe, B·S, E], MoE layers only
  readonly expertCounts: Int32Array; // [L_moe, B·S]
}

export async function forwardPadded(model: MoeModel, sequences: readonly ArrayLike<number>[], router?: Router): Promise<PaddedOutputs> {
  const L = model.numMoeLayers;
  const E = model.architecture.moe.numExperts;
  const V = model.architecture.vocabSize;
  const B = sequences.length;
  const S = Math.max(0, ...sequences.map((s) => s.length));
  const routerLogits = new Float32Array(L * B * S * E);
  const expertCounts = new Int32Array(L * B * S);
  const { logits: packed, layout } = await model.forward(sequences, {
    router,
    observer: {
      onRouting({ moeLayer: layer, layout: { starts }, routerLogits: r, routing }) {
        for (let b = 0; b < B; b++) {
          for (let t = starts[b], s = 0; t < starts[b + 1]; t++, s++) {
            const row = layer * B * S + b * S + s;
            routerLogits.set(r.subarray(t * E, (t + 1) * E), row * E);
            expertCounts[row] = routing.counts[t];
          }
        }
      },
    },
  });
  const logits = new Float32Array(B * S * V);
  for (let b = 0; b < B; b++) {
    const start = layout.starts[b];
    const n = layout.starts[b + 1] - start;
    logits.set(packed.subarray(start * V, (start + n) * V), b * S * V);
  }
  return { batch: B, length: S, logits, routerLogits, expertCounts };
}
