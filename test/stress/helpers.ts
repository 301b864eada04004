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
  next(match?: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  all: string[];
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
    async next(match = () => true, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex(match);
        if (i >= 0) return queue.splice(0, i + 1).pop()!;
        if (closed) throw new Error(`stream closed before a matching line; saw: ${all.slice(-5).join(' | ')}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching line within ${timeoutMs}ms; saw: ${all.slice(-5).join(' | ')}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
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
