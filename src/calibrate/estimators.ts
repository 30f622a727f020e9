/**
 * The null estimators behind `calibrate --estimator` (docs/semantics.md, null models): each turns a calibration
 * sample into its CDF on the shared grid (src/calibrate/sample.ts) and the parameters it fitted.
 */
import type { NullEstimator } from '../routers/null-model.js';
import { EMPIRICAL_METHOD, fitEmpirical } from './empirical.js';
import { fitGmm, GMM_METHOD } from './gmm.js';
import { fitKde } from './kde.js';
import type { NullFit, Sample } from './sample.js';
import { fitStudentT, STUDENT_T_METHOD } from './student-t.js';

export interface EstimatorOptions {
  /** CDF grid points. */
  readonly points: number;
  /** The most mixture components BIC may choose (gmm only). */
  readonly maxComponents: number;
}

export interface Estimator {
  readonly fit: (sample: Sample, options: EstimatorOptions) => NullFit;
  /** How the file's meta describes the method. */
  readonly method: (options: EstimatorOptions) => Record<string, unknown>;
}

export const ESTIMATORS: { readonly [E in NullEstimator]: Estimator } = {
  kde: {
    fit: (sample, { points }) => fitKde(sample, points),
    method: () => ({ method: 'gaussian_kde', bandwidth_rule: 'silverman: h = 1.06 * std(ddof=1) * n^(-1/5)' }),
  },
  gmm: {
    fit: (sample, { points, maxComponents }) => fitGmm(sample, points, maxComponents),
    method: ({ maxComponents }) => ({ method: GMM_METHOD, max_components: maxComponents }),
  },
  'student-t': {
    fit: (sample, { points }) => fitStudentT(sample, points),
    method: () => ({ method: STUDENT_T_METHOD }),
  },
  empirical: {
    fit: (sample, { points }) => fitEmpirical(sample, points),
    method: () => ({ method: EMPIRICAL_METHOD }),
  },
};
