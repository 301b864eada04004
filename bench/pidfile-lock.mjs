// The lock agent gateways use today (the design this library replaces): an O_EXCL
// lock file holding {pid, createdAt}; wait by polling every 50 ms for up to 10 s;
// a lock older than 30 minutes is "stale" and may be broken. Written here for the
// benchmark only.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';

export const POLL_MS = 50;
export const STALE_MS = 30 * 60 * 1000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function lock(lockPath, { timeoutMs = 10_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ pid: process.pid, hostname: os.hostname(), createdAt: Date.now() }));
      } finally {
        await handle.close();
      }
      return async () => {
        await fs.unlink(lockPath).catch(() => {});
      };
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    try {
      const { createdAt } = JSON.parse(await fs.readFile(lockPath, 'utf8'));
      if (Date.now() - createdAt > STALE_MS) {
        await fs.unlink(lockPath).catch(() => {});
        continue;
      }
    } catch {
      // torn or vanished: try again after the poll
    }
    if (Date.now() >= deadline) {
      const error = new Error(`timed out waiting for ${lockPath}`);
      error.code = 'ETIMEDOUT';
      throw error;
    }
    await sleep(POLL_MS);
  }
}
