export { BadRows, RowError } from './bad-rows.js';
export { booleanField, hasField, labelField, textField, textListField, type DataRecord, type SourcedRecord } from './fields.js';
export { readLines, readRecordLines, type Line } from './lines.js';
export { readJson, readJsonl } from './jsonl.js';
export { readTsv } from './tsv.js';
export { readParquet } from './parquet.js';
export { arrowSplitFiles, readArrow } from './arrow.js';
export {
  chooseSplitFiles,
  formatOfFile,
  listTree,
  locateInDirectory,
  splitAliases,
  type DataFormat,
  type LocatedFiles,
  type SplitQuery,
} from './locate.js';
export { resolveHubDataset, type HubDatasetOptions } from './hub-dataset.js';
export { readRecords, resolveData } from './records.js';
