/**
 * What a report says, as data every format renders (Markdown, HTML, PDF): decided once in report.ts, read by each
 * renderer, so the renderers never depend on the module that assembles them.
 */
import type { Chart } from './types.js';

/** A labelled fact of the run; `code` values (hashes, paths, specs) are shown in a fixed-width font. */
export interface Fact {
  readonly label: string;
  readonly value: string;
  readonly code: boolean;
}

/** A small table of text (data sets, configurations). */
export interface TextTable {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** A results-table column as the documents show it: the label carries the unit. */
export interface ShownColumn {
  readonly key: string;
  readonly label: string;
  readonly numeric: boolean;
  /** Printed in the PDF's appendix table rather than its results table (table.ts TableColumn.secondary). */
  readonly secondary?: boolean;
}

/** A results-table cell: its text, and the value it sorts by (null: no value, sorted last). */
export interface ShownCell {
  readonly text: string;
  readonly value: number | string | null;
}

export interface ShownTable {
  readonly columns: readonly ShownColumn[];
  readonly rows: readonly (readonly ShownCell[])[];
  /** Key of the column the rows are sorted by, and in which direction (null: the sweep's task × configuration order). */
  readonly sortedBy: string;
  readonly direction: 'ascending' | 'descending' | null;
}

export interface FindingGroup {
  readonly title: string;
  /** Sentences in Markdown inline syntax. */
  readonly findings: readonly string[];
}

export interface ChartSection {
  readonly title: string;
  readonly charts: readonly Chart[];
}

/** Everything a report says, in the order it says it; every format renders exactly this. */
export interface ReportContent {
  readonly title: string;
  readonly runDir: string;
  /** What runDir is called under the title (default "Run directory"; a comparison names several). */
  readonly runDirLabel?: string;
  readonly facts: readonly Fact[];
  readonly dataSets: TextTable;
  readonly findings: readonly FindingGroup[];
  /** Said in place of the findings when the data support none (a single configuration, say). */
  readonly noFindings: string | null;
  readonly results: ShownTable;
  /** What the results table's Δ and interval columns mean, for the sentence under its heading. */
  readonly resultsNote: string;
  readonly sections: readonly ChartSection[];
  readonly configurations: TextTable;
  /** Each configuration's full router spec, by configuration name (shown where the short name is: tooltips, titles). */
  readonly routers: Readonly<Record<string, string>>;
  readonly provenance: readonly Fact[];
}
