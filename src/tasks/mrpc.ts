/** GLUE MRPC (lm-eval `mrpc`): are two sentences paraphrases; label 1 = equivalent = " yes"; acc and F1 (positive = yes). */
import { labelField, textField } from '../data/fields.js';
import { choiceTask } from './choice.js';

export const mrpc = choiceTask({
  name: 'mrpc',
  split: 'validation',
  data: { config: 'mrpc' },
  choices: ['no', 'yes'],
  // Column names of the HF export first, then GLUE's dev.tsv (`Quality`, `#1 String`, `#2 String`).
  parse: (r) => ({
    context:
      `Sentence 1: ${textField(r, ['sentence1', '#1 String'])}\nSentence 2: ${textField(r, ['sentence2', '#2 String'])}\n` +
      'Question: Do both sentences mean the same thing?\nAnswer:',
    gold: labelField(r, ['label', 'Quality'], 2, ['not_equivalent', 'equivalent']),
  }),
  f1Positive: 1,
});
