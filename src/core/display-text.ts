/**
 * Text that anyone may have written (a holder record's owner, argv0, title,
 * hostname) made safe to print: no terminal escapes, carriage returns, line
 * breaks or bidi overrides, each replaced by `?`, and at most `max` characters.
 */
export function displayText(text: string, max = 80): string {
  // eslint-disable-next-line no-control-regex
  const safe = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?');
  return safe.length > max ? `${safe.slice(0, max - 1)}…` : safe;
}
