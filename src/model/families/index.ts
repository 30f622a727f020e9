import type { Architecture } from '../architecture.js';
import { ConfigFields } from '../config-fields.js';
import type { Family } from '../family.js';
import { deepseekV2, deepseekV3 } from './deepseek.js';
import { granitemoe } from './granitemoe.js';
import { mixtral } from './mixtral.js';
import { olmoe } from './olmoe.js';
import { qwen2Moe, qwen3Moe } from './qwen-moe.js';

/** Every model family routelab runs, by config.json model_type. */
export const FAMILIES: readonly Family[] = [olmoe, mixtral, qwen2Moe, qwen3Moe, deepseekV2, deepseekV3, granitemoe];

/** The family of a parsed config.json, and its architecture; an unknown model_type lists the known ones. */
export function parseArchitecture(raw: unknown, file = 'config.json'): { family: Family; architecture: Architecture } {
  const fields = new ConfigFields(raw, file);
  const type = fields.raw.model_type;
  const family = FAMILIES.find((f) => f.modelType === type);
  if (!family) {
    throw fields.error('model_type', `expected one of ${FAMILIES.map((f) => JSON.stringify(f.modelType)).join(', ')}, got ${JSON.stringify(type)}`);
  }
  return { family, architecture: family.architecture(fields) };
}
