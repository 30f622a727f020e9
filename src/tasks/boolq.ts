/**
 * BoolQ (lm-eval `boolq`): yes/no question about a passage; gold = " yes" when the answer is true — SuperGLUE's
 * `label` (1/true) or the original google release's boolean `answer`.
 */
import { booleanField, textField } from '../data/fields.js';
import { choiceTask } from './choice.js';

export const boolq = choiceTask({
  name: 'boolq',
  split: 'validation',
  data: { config: 'boolq' },
  choices: ['no', 'yes'],
  parse: (r) => ({
    context: `${textField(r, 'passage')}\nQuestion: ${textField(r, 'question')}?\nAnswer:`,
    gold: booleanField(r, ['label', 'answer']) ? 1 : 0,
  }),
});
