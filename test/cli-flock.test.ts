// `session-flock run` has util-linux flock(1)'s habits: each case runs the same arguments
// through flock(1) itself and through `session-flock run`, as real processes, and compares
// the exit status. The lock files end in `.lock`, which `run` takes as the lock file itself,
// so both programs lock the very same file.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, root, tempDir } from './helpers';

const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');

function findFlock(): string | null {
  if (process.platform === 'win32') return null;
  const found = spawnSync('sh', ['-c', 'command -v flock'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}
const flock = findFlock();
// On Linux CI util-linux is installed by .ci/run: a missing flock(1) is a broken set-up, not a skip.
if (flock === null && process.platform === 'linux' && process.env.CI) throw new Error('util-linux flock(1) is not installed');

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function exec(file: string, args: readonly string[], options: { cwd?: string } = {}): { child: ChildProcess; done: Promise<Outcome> } {
  const child = spawn(file, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Outcome>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

const ours = (args: readonly string[]): Promise<Outcome> => exec(process.execPath, [cli, 'run', ...args]).done;
const theirs = (args: readonly string[]): Promise<Outcome> => exec(flock as string, args).done;

/** Runs `args` through both programs at once; expects the same exit status and returns both outcomes. */
async function same(args: readonly string[]): Promise<{ ours: Outcome; theirs: Outcome }> {
  const [a, b] = await Promise.all([ours(args), theirs(args)]);
  expect(b.signal).toBeNull();
  expect(a.code, `session-flock run ${args.join(' ')}: ${a.stderr}\nflock ${args.join(' ')}: ${b.stderr}`).toBe(b.code);
  return { ours: a, theirs: b };
}

/** A flock(1) process holding `lockFile` until release() (its command keeps the inherited descriptor). */
async function flockHolder(lockFile: string, flags: string[] = []): Promise<{ pid: number; release: () => Promise<void> }> {
  const child = spawn(flock as string, [...flags, lockFile, 'sh', '-c', 'echo held; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(() => child.stdin!.destroy());
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the flock(1) holder exited with ${code}`)));
  });
  return {
    pid: child.pid as number,
    release: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

/** Whether flock(1) -n can take `lockFile` right now. */
async function freeForFlock(lockFile: string): Promise<boolean> {
  return (await theirs(['-n', lockFile, 'true'])).code === 0;
}

describe.runIf(flock !== null)('session-flock run compared with util-linux flock(1)', () => {
  it('usage errors: exit 64 like flock(1), one line and a hint to --help, and no lock file made', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'u.jsonl.lock');
    const cases: string[][] = [
      [],
      [lockFile],
      ['-c', 'true', lockFile],
      [lockFile, '-c'],
      [lockFile, '-c', 'true', 'extra'],
      ['-w', 'abc', lockFile, 'true'],
      ['-w'],
      ['-E', '300', lockFile, 'true'],
      ['-E', 'abc', lockFile, 'true'],
      ['--bogus', lockFile, 'true'],
      ['-q', lockFile, 'true'],
      ['--shared=yes', lockFile, 'true'],
    ];
    for (const args of cases) {
      const { ours: result } = await same(args);
      expect(result.code).toBe(64);
      expect(result.stdout).toBe('');
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(2);
      expect(lines[0]).toMatch(/^session-flock: \S/);
      expect(lines[1]).toBe("Try 'session-flock run --help' for more information.");
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('the command status, the -c form, options ending at the first operand, and --', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'c.jsonl.lock');
    expect((await same([lockFile, 'sh', '-c', 'exit 7'])).ours.code).toBe(7);
    expect((await same([lockFile, '-c', 'exit 3'])).ours.code).toBe(3);
    expect((await same([lockFile, '--command', 'exit 4'])).ours.code).toBe(4);
    expect((await same(['--', lockFile, 'sh', '-c', 'exit 5'])).ours.code).toBe(5);
    // `-e` and `-n` after the lock file belong to the command (node), not to the locker.
    expect((await same([lockFile, process.execPath, '-e', 'process.exit(Number(process.argv[1]))', '9'])).ours.code).toBe(9);
    const echoed = await same([lockFile, 'echo', '-n', 'hello']);
    expect(echoed.ours.stdout).toBe('hello');
    expect(echoed.theirs.stdout).toBe('hello');
    // The shell gets the string as one argument, quotes and all.
    const quoted = await same([lockFile, '-c', 'printf "%s|" "a b" c']);
    expect(quoted.ours.stdout).toBe('a b|c|');
    for (const flags of [['-s'], ['-x'], ['-e'], ['-o'], ['-sn'], ['-w', '1.5'], ['-w1'], ['--wait=1'], ['--timeout', '2'], ['--nonb'], ['-E', '0']]) {
      expect((await same([...flags, lockFile, 'sh', '-c', 'exit 6'])).ours.code, flags.join(' ')).toBe(6);
    }
    expect(await freeForFlock(lockFile)).toBe(true);
  });

  it('128+N when the command dies of signal N', async () => {
    const lockFile = path.join(tempDir(), 's.jsonl.lock');
    for (const [signal, number] of [['TERM', 15], ['KILL', 9], ['HUP', 1]] as const) {
      expect((await same([lockFile, 'sh', '-c', `kill -${signal} $$`])).ours.code).toBe(128 + number);
    }
  });

  it('69 when the command cannot be run, 66 when the lock file cannot be opened', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'x.jsonl.lock');
    const notExecutable = path.join(dir, 'data.txt');
    fs.writeFileSync(notExecutable, 'not a program\n', { mode: 0o644 });
    for (const command of [path.join(dir, 'no-such-command'), notExecutable]) {
      const { ours: result } = await same([lockFile, command]);
      expect(result.code).toBe(69);
      expect(result.stderr).toMatch(new RegExp(`^session-flock: failed to execute ${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    }
    expect(await freeForFlock(lockFile)).toBe(true);
    for (const unopenable of [path.join(dir, 'no-such-folder', 'y.jsonl.lock'), path.join(notExecutable, 'y.jsonl.lock')]) {
      const { ours: result } = await same([unopenable, 'true']);
      expect(result.code).toBe(66);
      expect(result.stderr).toContain(`cannot open lock file ${unopenable}`);
    }
  });

  it('a conflict: -n and -w exit with the conflict code (-E), silently, and the command never runs', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'n.jsonl.lock');
    const marker = path.join(dir, 'ran');
    const holder = await flockHolder(lockFile);
    const cases: [string[], number][] = [
      [['-n'], 1],
      [['-n', '-E', '7'], 7],
      [['--nonblock', '--conflict-exit-code=5'], 5],
      [['-E', '0', '-n'], 0],
      [['-s', '-n'], 1],
      [['-w', '0.3'], 1],
      [['-w', '.2', '-E', '9'], 9],
      [['--timeout', '0'], 1],
      [['-nw', '5'], 1],
    ];
    for (const [flags, code] of cases) {
      const { ours: result, theirs: flocks } = await same([...flags, lockFile, 'sh', '-c', 'touch "$0"', marker]);
      expect(result.code, flags.join(' ')).toBe(code);
      // flock(1) says nothing on a conflict (cron jobs rely on it), and neither does run.
      expect({ ours: result.stderr, theirs: flocks.stderr }, flags.join(' ')).toEqual({ ours: '', theirs: '' });
    }
    expect(fs.existsSync(marker)).toBe(false);
    await holder.release();
    expect(await freeForFlock(lockFile)).toBe(true);
  });

  it('-s beside a shared flock(1) holder runs at once; an exclusive request conflicts', async () => {
    const lockFile = path.join(tempDir(), 'sh.jsonl.lock');
    const holder = await flockHolder(lockFile, ['-s']);
    expect((await same(['-s', '-n', lockFile, 'sh', '-c', 'exit 3'])).ours.code).toBe(3);
    expect((await same(['-n', lockFile, 'true'])).ours.code).toBe(1);
    await holder.release();
  });

  it('a name ending in .lock is the lock file itself: flock(1) on it and run on either name exclude each other', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'x.jsonl');
    const lockFile = `${target}.lock`;
    const holder = await flockHolder(lockFile);
    expect((await ours(['-n', target, 'true'])).code).toBe(1);
    expect((await ours(['-n', lockFile, 'true'])).code).toBe(1);
    await holder.release();
    // While run holds x.jsonl.lock, flock(1) -n on it (a new open file description) conflicts.
    const inside = await ours([lockFile, flock as string, '-n', lockFile, 'true']);
    expect(inside.code).toBe(1);
    expect(fs.readdirSync(dir).sort()).toEqual(['x.jsonl.lock']);
  });

  it('without -w it waits as long as it takes (past the old 10 s limit), ignoring SIGUSR1/SIGUSR2 meanwhile', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'w.jsonl.lock');
    const holder = await flockHolder(lockFile);
    const mine = exec(process.execPath, [cli, 'run', lockFile, 'sh', '-c', 'exit 4']);
    const reference = exec(flock as string, [lockFile, 'sh', '-c', 'exit 4']);
    const waiterPids = async (): Promise<number[]> => {
      const status = exec(process.execPath, [cli, 'status', '--json', lockFile]);
      const [lock] = JSON.parse((await status.done).stdout) as { waiters: { pid: number }[] | null }[];
      return (lock.waiters ?? []).map((w) => w.pid);
    };
    // Both are blocked in the kernel (Linux lists waiters in /proc/locks).
    if (process.platform === 'linux') {
      await eventually(async () => {
        const pids = await waiterPids();
        return pids.includes(mine.child.pid as number) && pids.includes(reference.child.pid as number);
      }, 20_000, 'both programs to wait for the lock');
    }
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) mine.child.kill(signal);
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    expect(mine.child.exitCode).toBeNull();
    expect(reference.child.exitCode).toBeNull();
    await holder.release();
    const [a, b] = await Promise.all([mine.done, reference.done]);
    expect(b.code).toBe(4);
    expect(a.code).toBe(4);
    expect(a.stderr).toBe('');
  });
});

describe('session-flock run, beyond flock(1)', () => {
  const run = (args: readonly string[]): Promise<Outcome> => ours(args);

  it('`<target> -- <cmd>` still works (flock(1) would run a command named "--")', async () => {
    const target = path.join(tempDir(), 'd.jsonl');
    expect((await run([target, '--', process.execPath, '-e', 'process.exit(8)'])).code).toBe(8);
    expect((await run(['--', target, '--', process.execPath, '-e', 'process.exit(8)'])).code).toBe(8);
  });

  it('-u and -F are usage errors that say why; --help and -V exit 0', async () => {
    const target = path.join(tempDir(), 'h.jsonl');
    for (const [flag, why] of [['-u', /file-descriptor form/], ['--unlock', /file-descriptor form/], ['-F', /always runs as a child/]] as const) {
      const result = await run([flag, target, process.execPath, '-e', '']);
      expect(result.code).toBe(64);
      expect(result.stderr).toMatch(why);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(2);
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage:\n {2}session-flock run \[options\] <target> <command> \[<argument>\.\.\.\]\n {2}session-flock run \[options\] <target> -c <command string>\n/);
    const version = await run(['-V']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
    expect(fs.existsSync(`${target}.lock`)).toBe(false);
  });

  it('--verbose on a conflict says, as flock(1) does, that the lock was not got, and adds who holds it and how long the wait took', async () => {
    const dir = tempDir();
    const lockFile = path.join(dir, 'vc.jsonl.lock');
    const holder = await flockHolder(lockFile);
    const { ours: nonblock, theirs: theirNonblock } = await same(['--verbose', '-n', lockFile, 'true']);
    const { ours: timeout, theirs: theirTimeout } = await same(['--verbose', '-w', '0.2', lockFile, 'true']);
    await holder.release();
    expect(theirNonblock.stderr).toBe('flock: failed to get lock\n');
    expect(theirTimeout.stderr).toBe('flock: timeout while waiting to get lock\n');
    const escaped = lockFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // The kernel names flock(1)'s pid on Linux; elsewhere (no /proc/locks, no record) it is unknown.
    const who = process.platform === 'linux' ? `held by pid ${holder.pid}\\b` : 'holder unknown';
    expect(nonblock.stderr).toMatch(new RegExp(`^session-flock: failed to get lock ${escaped} \\(waited \\d+\\.\\d{6} seconds\\) — ${who}.*\n$`));
    expect(timeout.stderr).toMatch(new RegExp(`^session-flock: timeout while waiting to get lock ${escaped} \\(waited \\d+\\.\\d{6} seconds\\) — ${who}.*\n$`));
  });

  it('--verbose says how long the lock took and what it runs', async () => {
    const target = path.join(tempDir(), 'v.jsonl');
    const result = await run(['--verbose', target, process.execPath, '-e', '']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^session-flock: getting lock took \d+\.\d{6} seconds\nsession-flock: executing \S+\n$/);
  });
});
