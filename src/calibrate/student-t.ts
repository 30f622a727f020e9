/**
 * The Student-t null: the location-scale t with density
 *   f(x) = Γ((ν+1)/2) / (Γ(ν/2) √(νπ) σ) · (1 + ((x − μ)/σ)²/ν)^(−(ν+1)/2),
 * fitted by maximum likelihood with the ECM algorithm (Liu & Rubin 1995, §4), on the sample's histogram
 * (src/calibrate/sample.ts). Each iteration, with d_j = (x_j − μ)/σ and the E-step weights u_j = (ν + 1)/(ν + d_j²):
 *   μ ← Σ c_j u_j x_j / Σ c_j u_j,   σ² ← Σ c_j u_j (x_j − μ)² / n,
 *   ν ← the root of −ψ(ν/2) + ln(ν/2) + 1 + (1/n) Σ c_j (ln u_j − u_j) + ψ((ν_old + 1)/2) − ln((ν_old + 1)/2) = 0,
 * c_j the bin counts. The root is searched in [NU_MIN, NU_MAX] (the left side falls in ν, so the bounds hold when it
 * has none there: a sample lighter-tailed than every t gets ν = NU_MAX, within 2e-4 of the normal CDF). Start: μ the
 * mean, σ the standard deviation, ν = 10; σ never below the bin width.
 *
 * F(x) = 1 − ½ I_z(ν/2, ½) for t = (x − μ)/σ ≥ 0 and ½ I_z(ν/2, ½) below, z = ν/(ν + t²), I the regularized
 * incomplete beta function: the tail mass ½ I_z is what is computed, so it is exact to rounding however far out.
 */
import { EM_MAX_ITERATIONS, EM_TOLERANCE, type Histogram, histogram, type Sample, tabulateCdf, type NullFit } from './sample.js';

export const NU_MIN = 0.5;
export const NU_MAX = 1000;

export const STUDENT_T_METHOD = `location-scale Student-t by maximum likelihood (ECM on a histogram of the sample, nu in [${NU_MIN}, ${NU_MAX}]); stops below ${EM_TOLERANCE} nats/sample or after ${EM_MAX_ITERATIONS} iterations`;

export interface StudentT {
  readonly nu: number;
  readonly mu: number;
  readonly sigma: number;
}

export function fitStudentT(sample: Sample, points: number): NullFit {
  const t = ecmStudentT(histogram(sample), sample.std);
  return { ...tabulateCdf(sample, points, (x) => studentTCdf(x, t)), params: { nu: t.nu, mu: t.mu, sigma: t.sigma } };
}

export function ecmStudentT(h: Histogram, std: number): StudentT {
  const { x, count, n, width } = h;
  let mu = 0; // the histogram is centred on the sample mean
  let sigma = Math.max(width, std);
  let nu = 10;
  let logLikelihood = -Infinity;
  for (let iteration = 0; iteration < EM_MAX_ITERATIONS; iteration++) {
    let U = 0; // Σ c u
    let Ux = 0; // Σ c u x
    let Uxx = 0; // Σ c u x²
    let logQ = 0; // Σ c ln(ν + d²)
    for (let j = 0; j < x.length; j++) {
      const d = (x[j] - mu) / sigma;
      const q = nu + d * d;
      const cu = (count[j] * (nu + 1)) / q;
      U += cu;
      Ux += cu * x[j];
      Uxx += cu * x[j] * x[j];
      logQ += count[j] * Math.log(q);
    }
    // ln L(μ, σ, ν), with Σ ln(1 + d²/ν) = Σ ln(ν + d²) − n ln ν; and (1/n) Σ c (ln u − u) from the same sums.
    const ll = n * (lnGamma((nu + 1) / 2) - lnGamma(nu / 2) - 0.5 * Math.log(nu * Math.PI) - Math.log(sigma)) - ((nu + 1) / 2) * (logQ - n * Math.log(nu));
    const meanLogUMinusU = Math.log(nu + 1) - logQ / n - U / n;
    const converged = ll - logLikelihood < EM_TOLERANCE * n;
    logLikelihood = ll;
    mu = Ux / U;
    sigma = Math.max(width, Math.sqrt(Math.max(0, (Uxx - Ux * mu) / n)));
    const c = 1 + meanLogUMinusU + digamma((nu + 1) / 2) - Math.log((nu + 1) / 2);
    nu = solveNu((v) => -digamma(v / 2) + Math.log(v / 2) + c);
    if (converged) break;
  }
  return { nu, mu: mu + h.origin, sigma };
}

/** The root of a decreasing g in [NU_MIN, NU_MAX] by bisection on ln ν (to 1e-12 relative), or the bound it passes. */
function solveNu(g: (nu: number) => number): number {
  if (g(NU_MAX) >= 0) return NU_MAX;
  if (g(NU_MIN) <= 0) return NU_MIN;
  let lo = Math.log(NU_MIN);
  let hi = Math.log(NU_MAX);
  while (hi - lo > 1e-12) {
    const mid = (lo + hi) / 2;
    if (g(Math.exp(mid)) > 0) lo = mid;
    else hi = mid;
  }
  return Math.exp((lo + hi) / 2);
}

export function studentTCdf(x: number, { nu, mu, sigma }: StudentT): number {
  const t = (x - mu) / sigma;
  const tail = 0.5 * incompleteBeta(nu / 2, 0.5, nu / (nu + t * t));
  return t >= 0 ? 1 - tail : tail;
}

/** ln Γ(x) for x > 0: Lanczos (g = 7, 9 terms; relative error ~1e-15), with the reflection formula below ½. */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  const y = x - 1;
  let a = LANCZOS[0];
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 6, then the asymptotic series (error < 1e-11). */
export function digamma(x: number): number {
  let r = 0;
  for (; x < 6; x++) r -= 1 / x;
  const f = 1 / (x * x);
  return r + Math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))));
}

/**
 * The regularized incomplete beta function I_x(a, b) by its continued fraction (modified Lentz), on whichever of
 * x, 1 − x makes it converge fast (Numerical Recipes §6.4): O(√max(a, b)) terms, well within the cap for ν ≤ NU_MAX.
 */
export function incompleteBeta(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

function betaFraction(a: number, b: number, x: number): number {
  const TINY = 1e-300; // keeps a vanishing denominator from dividing by zero
  let c = 1;
  let d = 1 / nonZero(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    const even = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 / nonZero(1 + even * d);
    c = nonZero(1 + even / c);
    h *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 / nonZero(1 + odd * d);
    c = nonZero(1 + odd / c);
    h *= d * c;
    if (Math.abs(d * c - 1) < 1e-15) return h;
  }
  throw new Error(`the incomplete beta fraction did not converge for a = ${a}, b = ${b}, x = ${x}`);

  function nonZero(v: number): number {
    return Math.abs(v) < TINY ? TINY : v;
  }
}
