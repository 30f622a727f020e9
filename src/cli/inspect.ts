import { Checkpoint, resolveModelPath } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { parameterCounts } from '../model/parameters.js';
import { parseRouterSpec } from '../routers/registry.js';
import { RoutelabError } from '../errors.js';
import type { Command } from './command.js';

const millions = (n: number) => `${n.toLocaleString('en-US')} (${(n / 1e6).toFixed(2)} M)`;
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'print a checkpoint\'s architecture, parameter counts (total / active per token), dtypes and shards',
  usage: `Usage: routelab inspect DIR [--router SPEC] [--json]

  DIR            model directory in Hugging Face layout, or a hub repo id (org/name[@revision])
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
    const checkpoint = Checkpoint.open(dir);
    const c = checkpoint.config;
    const router = parseRouterSpec(values.router as string, {
      numExperts: c.numExperts, numExpertsPerTok: c.numExpertsPerTok, normTopkProb: c.normTopkProb, numLayers: c.numLayers,
    });
    const counts = parameterCounts(c);
    const activeMin = counts.active(router.minK);
    const activeMax = counts.active(router.maxK);
    const tokenizer = loadTokenizer(dir);
    const dtypes = Object.fromEntries(checkpoint.dtypeHistogram);
    const report = {
      dir,
      architecture: {
        layers: c.numLayers, hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim,
        experts: c.numExperts, expertsPerToken: c.numExpertsPerTok, expertWidth: c.intermediateSize, vocab: c.vocabSize,
        normTopkProb: c.normTopkProb, ropeTheta: c.ropeTheta, rmsNormEps: c.rmsNormEps, clipQkv: c.clipQkv,
        tieWordEmbeddings: c.tieWordEmbeddings, maxPositionEmbeddings: c.maxPositionEmbeddings,
      },
      parameters: {
        total: checkpoint.parameterCount,
        embedding: counts.embedding,
        router: router.spec,
        activePerToken: activeMin === activeMax ? activeMax : [activeMin, activeMax],
        activePerTokenWithoutEmbeddings: activeMin === activeMax
          ? activeMax - counts.embedding : [activeMin - counts.embedding, activeMax - counts.embedding],
      },
      dtypes,
      shards: checkpoint.shards,
      unexpectedTensors: checkpoint.unexpectedTensors,
      tokenizer: tokenizer ? { vocabSize: tokenizer.vocabSize, eos: tokenizer.eosTokenId, pad: tokenizer.padTokenId } : null,
    };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    const a = report.architecture;
    const active = (lo: number, hi: number) => (lo === hi ? millions(hi) : `${millions(lo)} … ${millions(hi)}`);
    console.log([
      `model        ${dir}`,
      `architecture OLMoE: ${a.layers} layers, hidden ${a.hidden}, ${a.heads} heads (${a.kvHeads} kv, head dim ${a.headDim}), ` +
        `${a.experts} experts × ${a.expertWidth} (top-${a.expertsPerToken}, norm_topk_prob ${a.normTopkProb}), vocab ${a.vocab}`,
      `             rope_theta ${a.ropeTheta}, rms_norm_eps ${a.rmsNormEps}, clip_qkv ${a.clipQkv}, tied embeddings ${a.tieWordEmbeddings}, ` +
        `max positions ${a.maxPositionEmbeddings}`,
      `parameters   total ${millions(checkpoint.parameterCount)}`,
      `             active per token under ${router.spec}: ${active(activeMin, activeMax)}; ` +
        `without embedding/lm_head: ${active(activeMin - counts.embedding, activeMax - counts.embedding)}`,
      `dtypes       ${Object.entries(dtypes).map(([d, n]) => `${d} ${millions(n)}`).join(', ')}`,
      `shards       ${checkpoint.shards.map((s) => `${s.file} (${gib(s.bytes)}, ${s.tensorCount} tensors)`).join('\n             ')}`,
      ...(checkpoint.unexpectedTensors.length ? [`unexpected   ${checkpoint.unexpectedTensors.length} tensors not used by the model`] : []),
      `tokenizer    ${tokenizer ? `${tokenizer.vocabSize} tokens, eos ${tokenizer.eosTokenId}, pad ${tokenizer.padTokenId}` : 'none (token-id input only)'}`,
    ].join('\n'));
  },
};
