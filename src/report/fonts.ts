/**
 * The report's typefaces: DejaVu Sans (and Mono) from the `dejavu-fonts-ttf` package, never the system's, so every
 * figure and PDF is drawn with the same glyph metrics on every machine — and with Δ, ±, − available.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const ttf = join(dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');

export const DEJAVU = {
  regular: join(ttf, 'DejaVuSans.ttf'),
  bold: join(ttf, 'DejaVuSans-Bold.ttf'),
  mono: join(ttf, 'DejaVuSansMono.ttf'),
  monoBold: join(ttf, 'DejaVuSansMono-Bold.ttf'),
} as const;
