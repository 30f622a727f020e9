import type { Rotary } from '../backends/backend.js';
import type { RopeArchitecture } from './architecture.js';

const f32 = Math.fround;

/**
 * The rotary frequencies and cos/sin scaling of an architecture, in float32 step by step as Hugging Face's
 * modeling_rope_utils computes them: default inv_freq[i] = 1 / θ^(2i/d); linear divides by the factor; YaRN blends
 * interpolated and extrapolated frequencies by a linear ramp between the correction dimensions of β_fast and β_slow.
 */
export function rotaryFor(rope: RopeArchitecture): Rotary {
  const { theta, dim, scaling } = rope;
  const P = dim / 2;
  const posFreqs = new Float32Array(P); // θ^(2i/d)
  for (let i = 0; i < P; i++) posFreqs[i] = f32(theta ** f32((2 * i) / dim));
  const invFreq = new Float32Array(P);
  let attentionScaling = 1;
  if (scaling === null) {
    for (let i = 0; i < P; i++) invFreq[i] = f32(1 / posFreqs[i]);
  } else if (scaling.type === 'linear') {
    for (let i = 0; i < P; i++) invFreq[i] = f32(f32(1 / posFreqs[i]) / scaling.factor);
  } else {
    const correctionDim = (rotations: number) => (dim * Math.log(scaling.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    const low = Math.max(Math.floor(correctionDim(scaling.betaFast)), 0);
    let high = Math.min(Math.ceil(correctionDim(scaling.betaSlow)), dim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < P; i++) {
      const extrapolation = f32(1 / posFreqs[i]);
      const interpolation = f32(1 / f32(scaling.factor * posFreqs[i]));
      const ramp = Math.min(1, Math.max(0, f32(f32(i - low) / f32(high - low))));
      const keep = f32(1 - ramp); // share of the extrapolated (unscaled) frequency
      invFreq[i] = f32(f32(interpolation * f32(1 - keep)) + f32(extrapolation * keep));
    }
    attentionScaling = scaling.attentionFactor;
  }
  return { invFreq, attentionScaling, pairing: rope.pairing };
}
