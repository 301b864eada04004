import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { acquire, holdFor } from '../file/api';
import { isLockPath, lockPathOf, targetOf } from '../file/lock-path';
import { LockTimeoutError } from '../core/errors';
import type { SessionLock } from '../core/session-lock';
import { type OptionSpec, parseOptions, UsageError } from './args';
import { say } from './say';

// Exit statuses of util-linux flock(1) (sysexits.h), so that scripts can swap one for the other.
/** The lock file cannot be opened or created. */
export const EXIT_CANNOT_OPEN = 66;
/** The command cannot be run (not found, not executable). */
export const EXIT_CANNOT_RUN = 69;
/** The lock cannot be taken for another reason than a conflict (e.g. an unsupported filesystem). */
export const EXIT_LOCK_FAILED = 71;

export const RUN_HELP = `Usage:
  session-flock run [options] <target> <command> [<argument>...]
  session-flock run [options] <target> -c <command string>

Takes the lock of <target>, runs the command while holding it, and exits with
the command's status, as util-linux flock(1) does.

The lock file is <target>.lock; a <target> whose name ends in .lock is the
lock file itself (so "run x.jsonl" and "run x.jsonl.lock" take the same lock,
and flock(1) on x.jsonl.lock excludes both).

Options (they end at <target>; "--" also ends them, before or after <target>):
  -s, --shared                  a shared (reader) lock
  -x, -e, --exclusive           an exclusive (writer) lock (the default)
  -n, --nonblock                fail at once rather than wait
  -w, --wait, --timeout <secs>  give up after <secs> seconds (fractions allowed);
                                without it, wait as long as it takes
  -E, --conflict-exit-code <n>  exit status on a conflict or timeout (default 1)
  -o, --close                   the command does not inherit the lock descriptor
  -c, --command <string>        (after <target>) run the string with /bin/sh -c
                                (cmd.exe /d /s /c on Windows)
      --owner <label>           owner label for the holder record
      --verbose                 say how long getting the lock took and what
                                runs; on a conflict, who holds the lock
  -h, --help                    this help
  -V, --version                 the version

The command inherits the lock descriptor as fd 3 (SESSION_FLOCK_FD=3), so the
lock lasts exactly as long as the command, even if session-flock is killed;
-o keeps it in session-flock only. On Windows session-flock always holds it.
SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are forwarded to the command.

Exit status: the command's; 128+N when it is killed by signal N; the conflict
code on -n or timeout (silently, as flock(1); --verbose says who holds the
lock); 64 usage error; 66 the lock file cannot be opened;
69 the command cannot be run; 71 the lock cannot be taken for another reason.
`;

const SPECS = [
  { name: 'shared', short: ['s'], long: ['shared'] },
  { name: 'exclusive', short: ['x', 'e'], long: ['exclusive'] },
  { name: 'nonblock', short: ['n'], long: ['nonblock', 'nonblocking'] },
  { name: 'wait', short: ['w'], long: ['wait', 'timeout'], value: 'secs' },
  { name: 'conflictExitCode', short: ['E'], long: ['conflict-exit-code'], value: 'number' },
  { name: 'close', short: ['o'], long: ['close'] },
  { name: 'owner', long: ['owner'], value: 'label' },
  { name: 'verbose', long: ['verbose'] },
  { name: 'command', short: ['c'], long: ['command'], value: 'command' },
  { name: 'unlock', short: ['u'], long: ['unlock'] },
  { name: 'noFork', short: ['F'], long: ['no-fork'] },
  { name: 'help', short: ['h'], long: ['help'] },
  { name: 'version', short: ['V'], long: ['version'] },
] as const satisfies readonly OptionSpec[];

export interface RunRequest {
  /** The path to lock for: the lock file is `${target}.lock`, or lockPath. */
  readonly target: string;
  /** Set when the argument named a lock file itself. */
  readonly lockPath: string | undefined;
  readonly shared: boolean;
  /** 0 for -n; Infinity without -w. */
  readonly timeoutMs: number;
  readonly conflictExitCode: number;
  /** Keep the descriptor from the command (-o). */
  readonly close: boolean;
  readonly owner: string | undefined;
  readonly verbose: boolean;
  /** The program and its arguments, or one string for the shell (-c). */
  readonly command: { readonly file: string; readonly args: readonly string[]; readonly shell: boolean };
}

export type RunArgs = { readonly kind: 'help' } | { readonly kind: 'version' } | ({ readonly kind: 'run' } & RunRequest);

const SECONDS = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function parseSeconds(text: string): number {
  if (/^inf(inity)?$/i.test(text)) return Infinity;
  if (!SECONDS.test(text)) throw new UsageError(`invalid timeout value: '${text}' (seconds, such as 5 or 0.5)`, 'run');
  return Number(text) * 1000;
}

function parseExitCode(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`invalid exit code: '${text}'`, 'run');
  const code = Number(text);
  if (code > 255) throw new UsageError('exit code out of range (expected 0 to 255)', 'run');
  return code;
}

/**
 * The lock a `run` argument means. A name ending in `.lock` is the lock file itself;
 * any other name is a target whose lock is `${target}.lock`. The rule looks only at the
 * name, never at what exists, so two racing runs always agree on one lock file.
 */
export function lockOfArgument(argument: string): { target: string; lockPath: string | undefined } {
  if (isLockPath(argument)) return { target: targetOf(argument), lockPath: argument };
  return { target: argument, lockPath: undefined };
}

/** Reads `run`'s command line the way util-linux flock(1) reads its own. */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const { options, operands } = parseOptions(argv, SPECS, 'run');
  let shared = false;
  let nonblock = false;
  let timeoutMs = Infinity;
  let conflictExitCode = 1;
  let close = false;
  let owner: string | undefined;
  let verbose = false;
  for (const option of options) {
    switch (option.name) {
      case 'help':
        return { kind: 'help' };
      case 'version':
        return { kind: 'version' };
      case 'shared':
        shared = true;
        break;
      case 'exclusive':
        shared = false;
        break;
      case 'nonblock':
        nonblock = true;
        break;
      case 'wait':
        timeoutMs = parseSeconds(option.value as string);
        break;
      case 'conflictExitCode':
        conflictExitCode = parseExitCode(option.value as string);
        break;
      case 'close':
        close = true;
        break;
      case 'owner':
        owner = option.value as string;
        break;
      case 'verbose':
        verbose = true;
        break;
      case 'command':
        throw new UsageError(`${option.spelled} goes after the target: run [options] <target> -c <command string>`, 'run');
      case 'unlock':
        throw new UsageError(`${option.spelled} is for flock(1)'s file-descriptor form, which run does not have; the lock is released when the command exits`, 'run');
      case 'noFork':
        throw new UsageError(`${option.spelled} is not supported: the command always runs as a child (it inherits the lock unless -o)`, 'run');
    }
  }
  if (operands.length === 0) throw new UsageError('run needs a target and a command: run [options] <target> <command> [<argument>...]', 'run');
  const [argument, ...rest] = operands;
  if (argument === '') throw new UsageError('the target is an empty string', 'run');
  let command: RunRequest['command'];
  if (rest[0] === '-c' || rest[0] === '--command') {
    if (rest.length !== 2) throw new UsageError(`${rest[0]} requires exactly one command argument`, 'run');
    command = { file: rest[1], args: [], shell: true };
  } else {
    // `run <target> -- <cmd>` (this CLI's first form) still works; flock(1) would run "--".
    if (rest[0] === '--') rest.shift();
    if (rest.length === 0) throw new UsageError(`run needs a command after the target ${JSON.stringify(argument)}`, 'run');
    command = { file: rest[0], args: rest.slice(1), shell: false };
  }
  return { kind: 'run', ...lockOfArgument(argument), shared, timeoutMs: nonblock ? 0 : timeoutMs, conflictExitCode, close, owner, verbose, command };
}

/** Seconds since `started`, as flock(1)'s --verbose prints them. */
function secondsSince(started: bigint): string {
  return (Number(process.hrtime.bigint() - started) / 1e9).toFixed(6);
}

/**
 * The exit status for a lock that could not be taken. A conflict (-n, or a -w timeout) is
 * silent, as in flock(1), since cron jobs and scripts expect it; --verbose says who holds
 * the lock and how long the wait took. Every other failure says why on stderr.
 */
function acquireFailure(error: unknown, request: RunRequest, started: bigint): number {
  if (error instanceof LockTimeoutError) {
    if (request.verbose) {
      // The holder part of the message keeps what the error knew (e.g. why the holder is unknown).
      const who = error.message.slice(`timed out after ${error.timeoutMs}ms waiting for ${error.lockPath} — `.length);
      const what = request.timeoutMs === 0 ? 'failed to get lock' : 'timeout while waiting to get lock';
      say(`${what} ${error.lockPath} (waited ${secondsSince(started)} seconds) — ${who}`);
    }
    return request.conflictExitCode;
  }
  const failure = error as NodeJS.ErrnoException;
  if (failure.syscall === 'open') {
    say(`cannot open lock file ${failure.path ?? request.lockPath ?? lockPathOf(request.target)}: ${failure.message.replace(/, open '.*'$/s, '')}`);
    return EXIT_CANNOT_OPEN;
  }
  say(failure.message);
  return EXIT_LOCK_FAILED;
}

/** "No such file or directory (ENOENT)" rather than Node's "spawn x ENOENT". */
function spawnFailure(error: NodeJS.ErrnoException): string {
  const known = typeof error.errno === 'number' ? util.getSystemErrorMap().get(error.errno) : undefined;
  return known === undefined ? error.message : `${known[1]} (${known[0]})`;
}

const FORWARDED: readonly NodeJS.Signals[] =
  process.platform === 'win32' ? ['SIGINT', 'SIGTERM'] : ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];

/**
 * Takes the lock, runs the command holding it, and resolves to flock(1)'s exit status.
 *
 * SIGUSR1 and SIGUSR2 are caught from the start (Node would otherwise open its
 * inspector on SIGUSR1 and die on SIGUSR2): ignored while waiting for the lock,
 * forwarded to the command once it runs. SIGINT, SIGTERM and SIGHUP keep their
 * default action while waiting (the kernel drops a lock nobody got) and are
 * forwarded while the command runs.
 */
export async function runCommand(request: RunRequest): Promise<number> {
  let child: ChildProcess | null = null;
  const forward = (signal: NodeJS.Signals): void => {
    try {
      child?.kill(signal);
    } catch {
      /* it is already gone */
    }
  };
  const userSignals: readonly NodeJS.Signals[] = FORWARDED.filter((s) => s === 'SIGUSR1' || s === 'SIGUSR2');
  // These stay installed until the process exits: a late SIGUSR1 must not open the inspector either.
  for (const signal of userSignals) process.on(signal, forward);

  const started = process.hrtime.bigint();
  let lock: SessionLock;
  try {
    const owner = request.owner ?? `session-flock run ${request.command.shell ? '-c' : path.basename(request.command.file)}`;
    lock = await acquire(request.target, { shared: request.shared, timeoutMs: request.timeoutMs, owner, lockPath: request.lockPath });
  } catch (error) {
    return acquireFailure(error, request, started);
  }
  if (request.verbose) say(`getting lock took ${secondsSince(started)} seconds`);

  // The one deliberate inheritance of a lock descriptor: the command gets the
  // lock's open file description as fd 3 (the kernel lock belongs to that
  // description, not to a process), so it stays locked until the command and
  // everything that inherited fd 3 from it have closed it, even if this
  // process is killed. Windows cannot pass our handle through stdio, so there
  // this process keeps holding it until the command exits.
  const inherit = !request.close && process.platform !== 'win32';
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
  const env = { ...process.env };
  if (inherit) {
    // spawn() dup2()s it to fd 3, which is inheritable; the original stays close-on-exec.
    const fd = holdFor(lock).inheritableDescriptor(false);
    if (fd < 0) {
      lock.releaseSync();
      say(`could not pass the lock descriptor to the command (code ${fd})`);
      return EXIT_LOCK_FAILED;
    }
    stdio.push(fd);
    env.SESSION_FLOCK_FD = '3';
  } else {
    delete env.SESSION_FLOCK_FD;
  }

  const { file, args, shell } = request.command;
  if (request.verbose) say(`executing ${file}`);
  return new Promise<number>((resolve) => {
    const handlers = FORWARDED.filter((s) => !userSignals.includes(s));
    const finish = (code: number): void => {
      for (const signal of handlers) process.off(signal, forward);
      lock.releaseSync();
      resolve(code);
    };
    try {
      // shell: /bin/sh -c on POSIX, %ComSpec% /d /s /c on Windows.
      child = spawn(file, args, { stdio, env, shell });
    } catch (error) {
      say(`failed to execute ${file}: ${(error as Error).message}`);
      finish(EXIT_CANNOT_RUN);
      return;
    }
    for (const signal of handlers) process.on(signal, forward);
    child.on('error', (error: NodeJS.ErrnoException) => {
      // Without a pid it never started; a later error (a failed kill) changes nothing.
      if (child?.pid !== undefined) return;
      say(`failed to execute ${file}: ${spawnFailure(error)}`);
      finish(EXIT_CANNOT_RUN);
    });
    child.on('exit', (code, signal) => {
      finish(signal !== null ? 128 + (os.constants.signals[signal] ?? 0) : (code ?? 1));
    });
  });
}
