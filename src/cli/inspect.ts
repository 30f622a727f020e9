import { attentionWidths, moeLayerIndices } from '../model/architecture.js';
import { Checkpoint, resolveModelPath } from '../model/checkpoint.js';
import { routerDefaultsOf } from '../model/family.js';
import { parameterCounts } from '../model/tensors.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { parseRouterSpec } from '../routers/registry.js';
import { RoutelabError } from '../errors.js';
import type { Command } from './command.js';

const millions = (n: number) => `${Math.round(n).toLocaleString('en-US')} (${n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : `${(n / 1e6).toFixed(2)} M`})`;
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'print a checkpoint\'s family, architecture, parameter counts (total / active per token), dtypes and shards',
  usage: `Usage: routelab inspect DIR [--router SPEC] [--json]

  DIR            model directory in Hugging Face layout (config.json alone is enough for the architecture and
                 parameter counts), or a hub repo id (org/name[@revision])
  --router SPEC  count active parameters for this router (default: the model's own routing); adaptive routers
                 give a range from min_k to max_k experts per token
  --json         print one JSON object instead of text`,
  options: {
    router: { type: 'string', default: 'default' },
    json: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) throw new RoutelabError('routelab inspect', 'expected exactly one model directory or repo id');
    const dir = await resolveModelPath(positionals[0]);
    const { family, architecture: a, layout } = Checkpoint.readArchitecture(dir);
    const checkpoint = Checkpoint.hasWeights(dir) ? Checkpoint.open(dir) : null;
    const router = parseRouterSpec(values.router as string, routerDefaultsOf(family, a));
    const counts = parameterCounts(a, layout);
    const inputEmbedding = a.vocabSize * a.hiddenSize;
    const range = (f: (k: number) => number) => (router.minK === router.maxK ? f(router.maxK) : [f(router.minK), f(router.maxK)]);
    const tokenizer = checkpoint ? loadTokenizer(dir) : null;
    const dtypes = checkpoint ? Object.fromEntries(checkpoint.dtypeHistogram) : null;
    const { heads, kvHeads, keyDim, valueDim } = attentionWidths(a.attention);
    const moeLayers = moeLayerIndices(a);
    const report = {
      dir,
      family: family.modelType,
      architecture: {
        layers: a.numLayers, moeLayers, hidden: a.hiddenSize, vocab: a.vocabSize,
        attention: a.attention.kind === 'mla' ? 'multi-head latent' : 'grouped-query', heads, kvHeads, keyDim, valueDim,
        experts: a.moe.numExperts, expertsPerToken: a.moe.numExpertsPerTok, expertWidth: a.moe.intermediateSize,
        sharedExpertWidth: a.moe.shared?.intermediateSize ?? null, denseWidth: moeLayers.length < a.numLayers ? a.denseIntermediateSize : null,
        defaultRouter: family.defaultRouter(a), rope: a.rope, rmsNormEps: a.rmsNormEps,
        tieWordEmbeddings: a.tieWordEmbeddings, maxPositionEmbeddings: a.maxPositionEmbeddings,
      },
      parameters: {
        total: counts.total,
        embedding: counts.embedding,
        router: router.spec,
        activePerToken: range(counts.active),
        activePerTokenWithoutInputEmbedding: range((k) => counts.active(k) - inputEmbedding),
        activePerTokenWithoutEmbeddings: range((k) => counts.active(k) - counts.embedding),
      },
      dtypes,
      shards: checkpoint?.shards ?? null,
      unexpectedTensors: checkpoint?.unexpectedTensors ?? null,
      tokenizer: tokenizer ? { vocabSize: tokenizer.vocabSize, eos: tokenizer.eosTokenId, pad: tokenizer.padTokenId } : null,
    };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    const r = report.architecture;
    const p = report.parameters;
    const show = (v: number | number[]) => (Array.isArray(v) ? `${millions(v[0])} … ${millions(v[1])}` : millions(v));
    const dense = r.denseWidth !== null ? `; dense layers ${a.layerKinds.flatMap((k, l) => (k === 'dense' ? [l] : [])).join(', ')} (MLP × ${r.denseWidth})` : '';
    const shared = r.sharedExpertWidth !== null ? ` + a shared expert × ${r.sharedExpertWidth}${a.moe.shared?.gated ? ' (gated)' : ''}` : '';
    console.log([
      `model        ${dir}`,
      `family       ${family.title} (${family.modelType}); default router ${r.defaultRouter}`,
      `architecture ${r.layers} layers, hidden ${r.hidden}, vocab ${r.vocab}; ${r.attention} attention, ${r.heads} heads (${r.kvHeads} kv, ` +
        `q/k ${r.keyDim}, v ${r.valueDim}); ${r.experts} experts × ${r.expertWidth}, top-${r.expertsPerToken}${shared}${dense}`,
      `             rope θ ${a.rope.theta}${a.rope.scaling ? ` (${a.rope.scaling.type} × ${a.rope.scaling.factor})` : ''}, rms_norm_eps ${r.rmsNormEps}, ` +
        `tied embeddings ${r.tieWordEmbeddings}, max positions ${r.maxPositionEmbeddings}`,
      `parameters   total ${millions(p.total)}`,
      `             active per token under ${router.spec}: ${show(p.activePerToken)}`,
      `             without the input embedding: ${show(p.activePerTokenWithoutInputEmbedding)}; without embedding and lm_head: ${show(p.activePerTokenWithoutEmbeddings)}`,
      ...(checkpoint ? [
        `dtypes       ${Object.entries(dtypes!).map(([d, n]) => `${d} ${millions(n)}`).join(', ')}`,
        `shards       ${checkpoint.shards.map((s) => `${s.file} (${gib(s.bytes)}, ${s.tensorCount} tensors)`).join('\n             ')}`,
        ...(checkpoint.unexpectedTensors.length ? [`unexpected   ${checkpoint.unexpectedTensors.length} tensors not used by the model`] : []),
        `tokenizer    ${tokenizer ? `${tokenizer.vocabSize} tokens, eos ${tokenizer.eosTokenId}, pad ${tokenizer.padTokenId}` : 'none (token-id input only)'}`,
      ] : ['weights      none (config.json only)']),
    ].join('\n'));
  },
};
