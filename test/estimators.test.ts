/**
 * The null estimators (src/calibrate/): parameters recovered from synthetic samples of known distributions, CDFs
 * against closed forms and scipy, the empirical CDF exactly, and the KS distance against scipy.stats.kstest.
 * Reference numbers marked "scipy" were computed once with scipy 1.x and written in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitEmpirical } from '../src/calibrate/empirical.js';
import { fitGmm } from '../src/calibrate/gmm.js';
import { normalCdf } from '../src/calibrate/kde.js';
import { ksDistance } from '../src/calibrate/ks.js';
import { describeSample } from '../src/calibrate/sample.js';
import { digamma, fitStudentT, incompleteBeta, lnGamma, studentTCdf } from '../src/calibrate/student-t.js';
import { nullCdf, type NullParamsOf } from '../src/routers/null-model.js';
import { createRandom } from '../src/sampling.js';

/** A seeded standard-normal generator (Box–Muller on the project's seeded uniform generator). */
function normals(seed: number): () => number {
  const random = createRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const close = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what} = ${actual}, expected ${expected} ± ${tolerance}`);

test('gmm: EM recovers a two-component mixture and BIC chooses two components', () => {
  // 0.3·N(−2, 0.5²) + 0.7·N(1, 1²), n = 20000. Over seeds 1…20 the largest errors were 0.007 (weights), 0.021 (means)
  // and 0.017 (sigmas); the tolerances are about three times those.
  const normal = normals(11);
  const uniform = createRandom(12);
  const samples = Float64Array.from({ length: 20000 }, () => (uniform() < 0.3 ? -2 + 0.5 * normal() : 1 + normal()));
  const sample = describeSample(samples);
  const fit = fitGmm(sample, 512, 4);
  const { weights, means, sigmas, bic } = fit.params as NullParamsOf['gmm'];
  assert.equal(weights.length, 2);
  assert.equal(bic.length, 4);
  assert.equal(bic.indexOf(Math.min(...bic)), 1);
  close(weights[0], 0.3, 0.02, 'w1');
  close(means[0], -2, 0.06, 'μ1');
  close(means[1], 1, 0.06, 'μ2');
  close(sigmas[0], 0.5, 0.05, 'σ1');
  close(sigmas[1], 1, 0.05, 'σ2');
  // The grid is the recorded mixture's CDF Σ w_k Φ((x − μ_k)/σ_k) …
  for (const p of [0, 100, 255, 400, 511]) {
    const F = weights.reduce((s, w, k) => s + w * normalCdf((fit.x[p] - means[k]) / sigmas[k]), 0);
    close(fit.cdf[p], Math.min(1, F), 1e-15, `cdf[${p}]`);
  }
  // … and close to the true one (scipy: F(−1) = 0.30910005277927166, 1 − F(2.5) = 0.046765040888200646).
  close(nullCdf(fit, -1), 0.30910005277927166, 0.01, 'F(−1)');
  close(1 - nullCdf(fit, 2.5), 0.046765040888200646, 0.005, '1 − F(2.5)');
});

test('student-t: ECM recovers ν = 4, μ and σ; a normal sample gets a large ν', () => {
  // t₄ scaled by σ = 2 around μ = 1.5, n = 20000, as Z/√(χ²₄/4). Over seeds 1…20 the largest errors were 0.26 (ν),
  // 0.040 (μ) and 0.030 (σ); the tolerances are 0.6, 0.08 and 0.08.
  const normal = normals(21);
  const samples = Float64Array.from({ length: 20000 }, () => {
    let chi2 = 0;
    for (let i = 0; i < 4; i++) chi2 += normal() ** 2;
    return 1.5 + (2 * normal()) / Math.sqrt(chi2 / 4);
  });
  const fit = fitStudentT(describeSample(samples), 512);
  const { nu, mu, sigma } = fit.params as NullParamsOf['student-t'];
  close(nu, 4, 0.6, 'ν');
  close(mu, 1.5, 0.08, 'μ');
  close(sigma, 2, 0.08, 'σ');
  for (const p of [0, 200, 511]) close(fit.cdf[p], studentTCdf(fit.x[p], { nu, mu, sigma }), 1e-15, `cdf[${p}]`);

  const gaussian = normals(22);
  const normalFit = fitStudentT(describeSample(Float64Array.from({ length: 20000 }, () => 3 + 0.5 * gaussian())), 64).params as NullParamsOf['student-t'];
  assert.ok(normalFit.nu > 30, `ν = ${normalFit.nu} for a normal sample`);
  close(normalFit.sigma, 0.5, 0.02, 'σ of the normal sample');
});

test('Student-t CDF: the closed forms at ν = 1, 2, 4 and scipy elsewhere to 1e-12, tails to relative 1e-10', () => {
  const standard = (nu: number) => ({ nu, mu: 0, sigma: 1 });
  for (const t of [-7, -1.3, 0, 0.4, 2, 25]) {
    close(studentTCdf(t, standard(1)), 0.5 + Math.atan(t) / Math.PI, 1e-14, `F₁(${t})`);
    close(studentTCdf(t, standard(2)), 0.5 + t / (2 * Math.sqrt(2 + t * t)), 1e-14, `F₂(${t})`);
    const s = t / Math.sqrt(4 + t * t); // F₄(t) = ½ + (3/4)·s·(1 − s²/3), s = t/√(4 + t²)
    close(studentTCdf(t, standard(4)), 0.5 + 0.75 * s * (1 - (s * s) / 3), 1e-14, `F₄(${t})`);
  }
  // scipy.stats.t.cdf(x, ν, loc=μ, scale=σ); the last column is scipy's sf, which 1 − F must match in relative terms.
  const cases: [number, number, number, number, number, number][] = [
    [4, 1.5, 2, 0, 0.24747971666588256, 0.7525202833341175],
    [4, 1.5, 2, 3.1, 0.7657364322188847, 0.2342635677811153],
    [4, 0, 1, 10, 0.999718998188642, 0.0002810018113579955],
    [4.5, -1, 0.7, -3, 0.02006426552339405, 0.979935734476606],
    [30, 0, 1, 2.5, 0.9909421754659666, 0.009057824534033344],
    [1000, 0, 1, 1.7, 0.9552790565203799, 0.04472094347962005],
    [0.5, 0, 1, 40, 0.9492951000352529, 0.050704899964747176],
  ];
  for (const [nu, mu, sigma, x, cdf, sf] of cases) {
    const F = studentTCdf(x, { nu, mu, sigma });
    close(F, cdf, 1e-12, `F(${x}; ν=${nu})`);
    assert.ok(Math.abs(1 - F - sf) / sf < 1e-10, `1 − F(${x}; ν=${nu}) = ${1 - F}, scipy sf ${sf}`);
  }
});

test('special functions match scipy: ln Γ, ψ, the regularized incomplete beta', () => {
  close(lnGamma(0.25), 1.2880225246980774, 1e-13, 'lnΓ(0.25)');
  close(lnGamma(3.7), 1.428072326665388, 1e-13, 'lnΓ(3.7)');
  close(lnGamma(500.5), 2608.2229044109863, 1e-10, 'lnΓ(500.5)');
  close(digamma(0.3), -3.502524222200133, 1e-10, 'ψ(0.3)');
  close(digamma(2.5), 0.7031566406452432, 1e-10, 'ψ(2.5)');
  close(digamma(50), 3.9019896734278925, 1e-12, 'ψ(50)');
  close(incompleteBeta(2, 0.5, 0.3), 0.03784096948581308, 1e-14, 'I_0.3(2, ½)');
  close(incompleteBeta(500, 0.5, 0.999), 0.31731044730971725, 1e-12, 'I_0.999(500, ½)');
});

test('empirical: F = #{x_i ≤ x}/(n + 1) exactly at every grid point; p is 1 below the sample and 1/(n + 1) from its maximum on', () => {
  const samples = [0, 1, 1, 3, -0.5];
  const sample = describeSample(samples);
  const fit = fitEmpirical(sample, 9);
  assert.deepEqual(fit.params, { n: 5 });
  assert.deepEqual(Array.from(fit.cdf), Array.from(fit.x, (g) => samples.filter((v) => v <= g).length / 6));
  // The grid is the shared one: 9 points on [min − 4h, max + 4h].
  close(fit.x[0], -0.5 - 4 * sample.bandwidth, 1e-15, 'x[0]');
  close(fit.x[8], 3 + 4 * sample.bandwidth, 1e-15, 'x[8]');
  assert.equal(1 - nullCdf(fit, -100), 1);
  close(1 - nullCdf(fit, 3 + 4 * sample.bandwidth), 1 / 6, 1e-15, 'p at the grid end');
  close(1 - nullCdf(fit, 1e6), 1 / 6, 1e-15, 'p beyond the grid');
});

test('KS distance equals scipy.stats.kstest on a fixed sample (with a tie)', () => {
  const sorted = Float64Array.from([-1.2, -0.3, 0.1, 0.4, 0.4, 1.7, 2.2, -2.5, 0.05, 0.9]).sort();
  // scipy.stats.kstest(sample, 'norm').statistic; normalCdf's relative error is below 1.2e-7.
  close(ksDistance(sorted, normalCdf), 0.2199388058383725, 2e-7, 'D against N(0, 1)');
  // scipy.stats.kstest(sample, stats.t(4, loc=0.2, scale=1.3).cdf).statistic
  close(ksDistance(sorted, (x) => studentTCdf(x, { nu: 4, mu: 0.2, sigma: 1.3 })), 0.16004818687412314, 1e-13, 'D against t₄(0.2, 1.3)');
});
