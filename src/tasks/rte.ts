/** GLUE RTE (lm-eval `rte`): does sentence1 entail sentence2; label 0 = entailment = " True". */
import { labelField, textField } from '../data/fields.js';
import { choiceTask } from './choice.js';

export const rte = choiceTask({
  name: 'rte',
  split: 'validation',
  data: { config: 'rte' },
  choices: ['True', 'False'],
  parse: (r) => ({
    context: `${textField(r, 'sentence1')}\nQuestion: ${textField(r, 'sentence2')} True or False?\nAnswer:`,
    // GLUE's dev.tsv spells the labels out.
    gold: labelField(r, 'label', 2, ['entailment', 'not_entailment']),
  }),
});
