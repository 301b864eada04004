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
