import { type ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import { pidAlive } from '../dist/cjs/core/process-alive.js';

export const root = path.resolve(__dirname, '..');
export const dist = path.join(root, 'dist', 'cjs', 'index.js');
export const fixture = (name: string): string => path.join(root, 'test', 'fixtures', name);

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-flock-test-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Locker {
  child: ChildProcess;
  pid: number;
  call(msg: Record<string, unknown>): Promise<any>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A child process running test/fixtures/locker.cjs, killed after the test. */
export async function startLocker(env: NodeJS.ProcessEnv = {}): Promise<Locker> {
  const child = fork(fixture('locker.cjs'), { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const pending = new Map<number, (value: any) => void>();
  let seq = 0;
  const ready = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (msg: any) => {
      if (msg.ready) resolve(msg.pid);
      else pending.get(msg.seq)?.(msg);
    });
  });
  const pid = await ready;
  return {
    child,
    pid,
    exited,
    call(msg) {
      const id = ++seq;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.send({ ...msg, seq: id });
      });
    },
  };
}

/** Runs a node script to completion; resolves with its exit status and output. */
export function runNode(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number; gid?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Whether another process can take the lock right now (util-linux flock(1) is not needed: a fresh node does it). */
export async function freeInAnotherProcess(target: string, options: Record<string, unknown> = {}): Promise<boolean> {
  const script = `
    const lib = require(${JSON.stringify(dist)});
    const lock = lib.tryAcquireSync(${JSON.stringify(target)}, ${JSON.stringify(options)});
    process.stdout.write(lock ? 'free' : 'held');
    if (lock) lock.releaseSync();`;
  const result = await runNode(['-e', script]);
  if (result.code !== 0) throw new Error(`probe failed: ${result.stderr}`);
  return result.stdout === 'free';
}

/** Polls until `check` is true, or fails after `timeoutMs` (a correctness bound, not a timing assertion). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function openDescriptors(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Native wait threads of this process, counted by the kernel (Linux names them sflock-wait). */
export function waitThreads(pid: number | 'self' = 'self'): number {
  let count = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      if (fs.readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim() === 'sflock-wait') count++;
    } catch {
      /* the thread ended while we looked */
    }
  }
  return count;
}

// The library's own liveness check (process.kill(pid, 0); EPERM counts as alive).
export { pidAlive as isAlive };

/** When the process `pid` started (Linux: /proc/<pid>/stat field 22), or null when there is none. */
function startTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * A process that is not our child (a grandchild, the command another process ran), to be
 * signalled later only while its pid still names it. A remembered pid alone may name a
 * stranger by then: pids are reused, and fast on a busy machine (pid_max is often 32768,
 * and every thread takes one), so a cleanup that kills a pid after its process ended can
 * kill another suite's process. On Linux the pid's start time tells them apart; elsewhere
 * a signal goes only to a pid that is alive.
 */
export function otherProcess(pid: number): { readonly pid: number; kill(signal?: NodeJS.Signals): boolean } {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`not a process id: ${pid}`);
  const started = process.platform === 'linux' ? startTime(pid) : null;
  return {
    pid,
    kill(signal = 'SIGKILL') {
      if (process.platform === 'linux' ? started === null || startTime(pid) !== started : !pidAlive(pid)) return false;
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
  };
}
