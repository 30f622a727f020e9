/**
 * Parquet files (Hugging Face hub exports) read with hyparquet, one row group at a time so memory stays bounded by
 * the largest row group. Every codec the hub uses (snappy, zstd, gzip, brotli, lz4) comes from hyparquet-compressors.
 */
import { RoutelabError } from '../errors.js';
import type { SourcedRecord } from './fields.js';

/** Streams the records of a parquet file; sources are `file#row` (0-based row of the file). */
export async function* readParquet(file: string): AsyncGenerator<SourcedRecord> {
  // Loaded when a Parquet file is read, not at start-up.
  const [{ asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects }, { compressors }] = await Promise.all([import('hyparquet'), import('hyparquet-compressors')]);
  const buffer = await asyncBufferFromFile(file);
  let metadata;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw new RoutelabError(file, `not a readable parquet file (${(e as Error).message})`);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows;
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart, rowEnd });
    } catch (e) {
      // A damaged data page surfaces here, not in the footer.
      throw new RoutelabError(file, `not a readable parquet file: rows ${rowStart}–${rowEnd - 1} cannot be decoded (${(e as Error).message})`);
    }
    for (let i = 0; i < rows.length; i++) yield { record: rows[i]!, source: `${file}#${rowStart + i}` };
    rowStart = rowEnd;
  }
}
