// Shared helpers for the stress suite: scale, temp dirs, child processes, /proc probes.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'stress', 'fixtures');
/** SFLOCK_DIST (a dist/cjs/index.js) lets a run use a snapshot of the build while dist/ is being rebuilt. */
export const DIST_CJS = process.env.SFLOCK_DIST ?? path.join(ROOT, 'dist', 'cjs', 'index.js');

/** STRESS_SCALE=ci shrinks every count and duration so the suite stays well under 3 minutes. */
export const CI = (process.env.STRESS_SCALE ?? '').toLowerCase() === 'ci';
export function scale<T>(full: T, ci: T): T {
  return CI ? ci : full;
}

export function tempDir(prefix: string, base = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(base, `sflock-${prefix}-`));
}

export function has(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

// Counted the same way as in the main suite.
export { openDescriptors as fdCount, waitThreads } from '../helpers';

export interface Lines {
  /**
   * Waits for a (matching) line. `stallMs` bounds how long the child may go without
   * running at all (no CPU time used, nothing runnable, in its whole process tree): a
   * child that is merely slow on a loaded machine is never failed, one that sits blocked
   * (a lock that should be free, a lost wake-up) fails after `stallMs`.
   */
  next(match?: (line: string) => boolean, stallMs?: number): Promise<string>;
  all: string[];
}

/** CPU ticks used plus tasks runnable, over `pid` and its descendants: changes while the tree makes progress. */
export function treeActivity(pid: number | undefined): string {
  if (pid === undefined) return '';
  let ticks = 0;
  let runnable = 0;
  const visit = (p: number, depth: number) => {
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone
    }
    for (const tid of tids) {
      try {
        const stat = fs.readFileSync(`/proc/${p}/task/${tid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] = state, f[11] = utime, f[12] = stime
        if (f[0] === 'R') runnable++;
        ticks += Number(f[11]) + Number(f[12]);
        if (depth < 8) for (const c of fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) visit(Number(c), depth + 1);
      } catch {}
    }
  };
  visit(pid, 0);
  return `${ticks}/${runnable}`;
}

/** Reads a child's stdout line by line; next() waits for a (matching) line. */
export function lines(child: ChildProcess): Lines {
  const all: string[] = [];
  const queue: string[] = [];
  const waiters: Array<() => void> = [];
  let closed = false;
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    all.push(line);
    queue.push(line);
    for (const w of waiters.splice(0)) w();
  });
  rl.on('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  return {
    all,
    async next(match = () => true, stallMs = 15_000) {
      let activity = treeActivity(child.pid);
      let deadline = Date.now() + stallMs;
      for (;;) {
        const i = queue.findIndex(match);
        if (i >= 0) return queue.splice(0, i + 1).pop()!;
        if (closed) throw new Error(`stream closed before a matching line; saw: ${all.slice(-5).join(' | ')}`);
        const now = treeActivity(child.pid);
        if (now !== activity) [activity, deadline] = [now, Date.now() + stallMs]; // it ran: slow, not stuck
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching line, and the child did not run at all for ${stallMs}ms; saw: ${all.slice(-5).join(' | ')}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded), collecting output. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60_000}ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that exits without reading its input has closed the pipe: EPIPE is not a failure.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

/** Node with the fixtures' conventions. */
export function runNode(script: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}) {
  return run(process.execPath, [path.join(FIXTURES, script), ...args], opts);
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Measured numbers land in $STRESS_RESULTS (default <tmp>/session-flock-stress) as <name>.json, for reports. */
export function saveResult(name: string, value: unknown): void {
  const dir = process.env.STRESS_RESULTS ?? path.join(os.tmpdir(), 'session-flock-stress');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(value, null, 2) + '\n');
}

/** Every task of `pid` and its descendants, as /proc/<pid>/task/<tid> paths. */
function treeTasks(pid: number, depth = 0): string[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const tid of tids) {
    const task = `/proc/${pid}/task/${tid}`;
    out.push(task);
    try {
      if (depth < 8) for (const c of fs.readFileSync(`${task}/children`, 'utf8').split(' ').filter(Boolean)) out.push(...treeTasks(Number(c), depth + 1));
    } catch {}
  }
  return out;
}

/** True when some task of `pid` (and, unless `own`, its descendants) sleeps in the kernel's flock wait: queued behind a holder. */
export function blockedInFlock(pid: number | undefined, own = false): boolean {
  if (pid === undefined) return false;
  const tasks = own ? fs.readdirSync(`/proc/${pid}/task`).map((tid) => `/proc/${pid}/task/${tid}`) : treeTasks(pid);
  return tasks.some((task) => {
    try {
      return /lock.*wait/.test(fs.readFileSync(`${task}/wchan`, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** Waits until `cond()` holds, failing only if it does not and the child did not run at all for `stallMs`. */
export async function untilChild(child: ChildProcess, what: string, cond: () => boolean, stallMs = 15_000): Promise<void> {
  let activity = treeActivity(child.pid);
  let deadline = Date.now() + stallMs;
  for (;;) {
    if (cond()) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`child exited (${child.exitCode ?? child.signalCode}) before ${what}`);
    const now = treeActivity(child.pid);
    if (now !== activity) [activity, deadline] = [now, Date.now() + stallMs];
    if (Date.now() >= deadline) throw new Error(`not ${what}, and the child did not run at all for ${stallMs}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
