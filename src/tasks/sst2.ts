/** GLUE SST-2 (lm-eval `sst2`): sentiment of one sentence; label 0 = negative, 1 = positive. */
import { labelField, textField } from '../data/fields.js';
import { choiceTask } from './choice.js';

export const sst2 = choiceTask({
  name: 'sst2',
  split: 'validation',
  data: { config: 'sst2' },
  choices: ['negative', 'positive'],
  parse: (r) => ({
    context: `${textField(r, 'sentence')}\nQuestion: Is this sentence positive or negative?\nAnswer:`,
    gold: labelField(r, 'label', 2, ['negative', 'positive']),
  }),
});
