import { displayText, formatDuration } from '../core/display-text';

/** A cell of text anyone may have written (see displayText); '-' for nothing. */
export function cell(text: string | number | null, max = 60): string {
  return text === null ? '-' : displayText(String(text), max);
}

/** A duration cell; '-' when unknown. */
export function durationCell(ms: number | null): string {
  return ms === null ? '-' : formatDuration(ms);
}

/** Columns padded to their widest cell, two spaces apart; the last column of a row is never padded. */
export function formatColumns(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
