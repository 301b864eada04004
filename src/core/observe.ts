import * as diagnostics from 'node:diagnostics_channel';
import * as util from 'node:util';

/** Published on node:diagnostics_channel; see the README's Observability section. */
export const channels = {
  acquire: diagnostics.channel('session-flock:acquire'),
  release: diagnostics.channel('session-flock:release'),
  contended: diagnostics.channel('session-flock:contended'),
  longHold: diagnostics.channel('session-flock:long-hold'),
  leak: diagnostics.channel('session-flock:leak'),
};

/** NODE_DEBUG=session-flock */
export const debug = util.debuglog('session-flock');
// Bun's debuglog() has no `enabled` (undefined), which would silence every line guarded by it:
// decide it from NODE_DEBUG as Node does (comma-separated names, `*` wildcards, any case).
if (typeof debug.enabled !== 'boolean') {
  const names = (process.env.NODE_DEBUG ?? '').split(',').map((name) => name.trim()).filter(Boolean);
  const pattern = (name: string) => new RegExp(`^${name.replace(/[|\\{}()[\]^$+?.]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
  Object.defineProperty(debug, 'enabled', { value: names.some((name) => pattern(name).test('session-flock')) });
}
