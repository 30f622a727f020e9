/**
 * Text <-> token ids for a model directory, via `@huggingface/tokenizers` reading the model's own `tokenizer.json`.
 *
 * Everything here is set up so that ids equal the raw BPE ids the model was trained on and decode(encode(text))
 * gives the text back (up to the tokenizer's NFC normalisation): no special tokens are added on encode, nothing is
 * skipped on decode, and the library's default "clean up tokenization spaces" pass (which turns " ." into ".") is off.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { RoutelabError } from '../errors.js';

export interface TextTokenizer {
  /** Token ids of `text`; no BOS/EOS or other special tokens are added. */
  encode(text: string): Int32Array;
  /** Text of `ids`, special tokens included, so that it round-trips with `encode`. */
  decode(ids: ArrayLike<number>): string;
  /** Ids run from 0 to vocabSize - 1 (the tokenizer's own count; a model's embedding table may be padded beyond it). */
  readonly vocabSize: number;
  /** From tokenizer_config.json's `eos_token`; null when it names none. */
  readonly eosTokenId: number | null;
  /** From tokenizer_config.json's `pad_token`; null when it names none. */
  readonly padTokenId: number | null;
  /** The vocabulary entry for `id` in the tokenizer's own spelling (byte-level BPE writes a leading space as 'Ġ'). */
  tokenToString(id: number): string;
}

const TOKENIZER_FILE = 'tokenizer.json';
const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

/**
 * Loads the tokenizer of a model directory (synchronously: two local JSON files). Returns null when the directory
 * has no tokenizer.json, since a model directory without tokenizer files still runs on token ids.
 * tokenizer_config.json is optional; without it eosTokenId and padTokenId are null.
 */
export function loadTokenizer(modelDir: string): TextTokenizer | null {
  const tokenizerPath = join(modelDir, TOKENIZER_FILE);
  if (!existsSync(tokenizerPath)) return null;
  const tokenizerJson = readJsonObject(tokenizerPath);
  const configPath = join(modelDir, TOKENIZER_CONFIG_FILE);
  const tokenizerConfig = existsSync(configPath) ? readJsonObject(configPath) : {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (error) {
    throw new RoutelabError(tokenizerPath, `not a tokenizer @huggingface/tokenizers can load: ${(error as Error).message}`);
  }
  return wrapTokenizer(tokenizer, tokenizerConfig, configPath);
}

/** The tokenizer, or a RoutelabError explaining that text input needs one when the model directory has none. */
export function requireTokenizer(tok: TextTokenizer | null, modelDir: string): TextTokenizer {
  if (tok === null) {
    throw new RoutelabError(
      modelDir,
      "no tokenizer.json in this model directory: text input needs the model's tokenizer; pass token ids instead (--input ids.json / .safetensors)",
    );
  }
  return tok;
}

export interface StreamDecoder {
  /** Appends one generated id; returns the text it completes (possibly '' while a multi-byte character is split). */
  push(id: number): string;
  /** Returns whatever is still held back (e.g. a trailing incomplete character, shown as U+FFFD). */
  flush(): string;
}

/**
 * Incremental decoding for generation. Byte-level BPE can split one UTF-8 character across tokens, so a push holds
 * its text back while it ends in U+FFFD (the decoder's stand-in for a partial sequence). Each push decodes only a
 * short window, not every id so far (which made a long generation quadratic): the ids since the last emission plus
 * the few before it as context, emitting what the window's text adds to the context's — the scheme of Hugging Face's
 * text-generation-inference. The context absorbs what a decoder does at the start of a text (SentencePiece drops the
 * first token's leading space), so the concatenation of all pushes and the flush equals decode(all ids).
 */
export function createStreamDecoder(tokenizer: TextTokenizer): StreamDecoder {
  const ids: number[] = [];
  let contextStart = 0; // ids[contextStart .. emittedEnd) are the context: already emitted
  let emittedEnd = 0;
  const step = (final: boolean): string => {
    const context = tokenizer.decode(ids.slice(contextStart, emittedEnd));
    const text = tokenizer.decode(ids.slice(contextStart));
    if (text.length <= context.length || (!final && text.endsWith(REPLACEMENT_CHARACTER))) return '';
    contextStart = emittedEnd;
    emittedEnd = ids.length;
    return text.slice(context.length);
  };
  return {
    push(id: number): string {
      ids.push(id);
      return step(false);
    },
    flush(): string {
      return step(true);
    },
  };
}

const REPLACEMENT_CHARACTER = '\uFFFD';

function readJsonObject(path: string): object {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new RoutelabError(path, `not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RoutelabError(path, 'expected a JSON object');
  }
  return parsed;
}

function wrapTokenizer(tokenizer: Tokenizer, tokenizerConfig: object, configPath: string): TextTokenizer {
  const vocabSize = tokenizer.model?.vocab.length ?? 0;
  const specialTokenId = (field: 'eos_token' | 'pad_token'): number | null => {
    const entry: unknown = (tokenizerConfig as Record<string, unknown>)[field];
    // transformers writes either the token text or an AddedToken-like object carrying it in `content`.
    const content = typeof entry === 'object' && entry !== null ? (entry as { content?: unknown }).content : entry;
    if (content === undefined || content === null) return null;
    const id = typeof content === 'string' ? tokenizer.token_to_id(content) : undefined;
    if (id === undefined) {
      throw new RoutelabError(`${configPath}: ${field}`, `${JSON.stringify(entry)} is not a token of tokenizer.json`);
    }
    return id;
  };
  const tokenToString = (id: number): string => {
    const token = Number.isInteger(id) && id >= 0 && id < vocabSize ? tokenizer.id_to_token(id) : undefined;
    if (token === undefined) {
      throw new RoutelabError('token id', `${id} is not in the tokenizer's vocabulary (0..${vocabSize - 1})`);
    }
    return token;
  };
  return {
    vocabSize,
    eosTokenId: specialTokenId('eos_token'),
    padTokenId: specialTokenId('pad_token'),
    tokenToString,
    encode(text: string): Int32Array {
      return Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids);
    },
    decode(ids: ArrayLike<number>): string {
      // The library throws on an empty list and maps unknown ids to its unk token (OLMoE has none), so check here.
      if (ids.length === 0) return '';
      const idList = Array.from(ids);
      for (const id of idList) tokenToString(id);
      return tokenizer.decode(idList, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    },
  };
}
