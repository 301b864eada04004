const PREFIX = 'session-flock: ';

/**
 * One message on stderr, named as util-linux tools name theirs. A message that already
 * starts with the name (a library error written for other callers) gets it once, not twice.
 */
export function say(message: string): void {
  process.stderr.write(`${message.startsWith(PREFIX) ? '' : PREFIX}${message}\n`);
}
