import * as os from 'node:os';

let cached: string | undefined;

/**
 * This machine's hostname, read on first use rather than at import: some runtimes
 * (Deno without --allow-sys) refuse os.hostname(), and importing session-flock must never
 * throw.
 */
export function hostName(): string {
  cached ??= os.hostname();
  return cached;
}
