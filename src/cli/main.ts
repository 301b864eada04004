#!/usr/bin/env node
import { spawn, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { acquire, holdFor } from '../file/api';
import { LockTimeoutError } from '../core/errors';
import { inspectMany, listLocks, type LockStatus } from '../file/inspect';
import type { SessionLock } from '../core/session-lock';

const USAGE = `Usage:
  session-flock status [--json] [-r|--recursive] <file-or-dir>...
  session-flock run [--shared] [--timeout <ms>] [--owner <label>] [--close] <target> -- <cmd> [args...]
  session-flock --help | --version

status  Shows every lock, free or held: who holds it (from the kernel on Linux),
        in which mode, the owner label, for how long, and notes such as stale
        holder records. A <file> means the lock of that file (<file>.lock) or a
        lock file itself; a <dir> means every *.lock in it (-r: and below).
        --json prints the LockStatus array. Exit 0 when everything could be
        inspected, 1 when an argument could not be.

run     Takes the lock of <target> (<target>.lock), then runs <cmd> holding it,
        and exits with its status (128+N when it is killed by signal N).
        The command inherits the lock descriptor (as fd 3, like flock(1)
        without -o), so the lock lasts exactly as long as the command, even if
        session-flock itself is killed; --close keeps it in session-flock only.
        SIGINT, SIGTERM and SIGHUP are forwarded to the command.
          --shared         a shared (reader) lock instead of exclusive
          --timeout <ms>   how long to wait (default 10000; 0 = one try;
                           "Infinity" = no limit); on timeout exit 1 naming the holder
          --owner <label>  owner label for the holder record
          --close          do not let the command inherit the descriptor
        On Windows the lock is always held by session-flock for the command's
        lifetime (a lock handle cannot be passed to a child there).
`;

const EXIT_USAGE = 2;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

class UsageError extends Error {}

function fail(message: string, code: number): never {
  process.stderr.write(`session-flock: ${message}\n`);
  process.exit(code);
}

/** No terminal escapes or line breaks from records (which anyone may write) reach the table. */
function clean(text: string, max = 80): string {
  // eslint-disable-next-line no-control-regex
  const safe = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?');
  return safe.length > max ? `${safe.slice(0, max - 1)}…` : safe;
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  s %= 60;
  if (d > 0) return `${d}d${String(h).padStart(2, '0')}h${String(m).padStart(2, '0')}m`;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

function pidColumn(status: LockStatus): string {
  if (status.holders.length === 0) return '-';
  return status.holders
    .map((h) => {
      const pid = h.pid === null ? '?' : String(h.pid);
      const suffix = h.alive === false ? '(exited)' : h.source === 'record' ? '(record)' : '';
      return `${pid}${suffix}`;
    })
    .join(',');
}

export function formatTable(statuses: LockStatus[]): string {
  const header = ['LOCK', 'STATE', 'MODE', 'PID', 'OWNER', 'HELD FOR', 'NOTES'];
  const rows = statuses.map((s) => [
    clean(displayPath(s.lockPath), 200),
    s.state,
    s.mode ?? '-',
    pidColumn(s),
    s.owner === null ? '-' : clean(s.owner, 40),
    formatDuration(s.heldForMs),
    s.notes.length === 0 ? '' : clean(s.notes.join('; '), 400),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      recursive: { type: 'boolean', short: 'r', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('status needs at least one file or folder');
  const results: LockStatus[] = [];
  let failed = false;
  for (const arg of positionals) {
    let absolute = path.resolve(arg);
    // A holder record names its lock: `x.jsonl.lock.json` -> `x.jsonl.lock`.
    if (absolute.endsWith('.lock.json')) absolute = absolute.slice(0, -'.json'.length);
    let stat: fs.Stats | null = null;
    try {
      stat = fs.statSync(absolute);
    } catch {
      stat = null;
    }
    try {
      if (stat?.isDirectory()) {
        results.push(...(await listLocks(absolute, { recursive: values.recursive })));
      } else if (absolute.endsWith('.lock') && (stat !== null || fs.existsSync(`${absolute}.json`))) {
        results.push(...inspectMany([{ target: absolute.slice(0, -'.lock'.length), lockPath: absolute }]));
      } else if (stat !== null || fs.existsSync(`${absolute}.lock`) || fs.existsSync(`${absolute}.lock.json`)) {
        results.push(...inspectMany([{ target: absolute }]));
      } else {
        process.stderr.write(`session-flock: ${arg}: no such file or folder, and no ${arg}.lock\n`);
        failed = true;
      }
    } catch (error) {
      process.stderr.write(`session-flock: ${arg}: ${(error as Error).message}\n`);
      failed = true;
    }
  }
  if (values.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else if (results.length === 0 && !failed) process.stdout.write('no locks found\n');
  else if (results.length > 0) process.stdout.write(formatTable(results));
  return failed ? 1 : 0;
}

function parseTimeout(text: string | undefined): number {
  if (text === undefined) return 10_000;
  if (/^(inf|infinity)$/i.test(text)) return Infinity;
  if (!/^\d+$/.test(text)) throw new UsageError(`--timeout must be a number of milliseconds or "Infinity", not ${JSON.stringify(text)}`);
  return Number(text);
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

async function run(argv: string[]): Promise<number> {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options: {
      shared: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      owner: { type: 'string' },
      close: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const before = tokens.filter((t) => t.kind === 'positional' && (terminator === undefined || t.index < terminator.index)).length;
  if (positionals.length === 0) throw new UsageError('run needs a target and a command: run <target> -- <cmd> [args...]');
  const target = positionals[0];
  const command = positionals.slice(1);
  if (command.length === 0) throw new UsageError('run needs a command after the target: run <target> -- <cmd> [args...]');
  if (terminator !== undefined && before > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])} before --: run <target> -- <cmd> [args...]`);
  const timeoutMs = parseTimeout(values.timeout);
  const owner = values.owner ?? `session-flock run ${path.basename(command[0])}`;

  let lock: SessionLock;
  try {
    lock = await acquire(target, { shared: values.shared, timeoutMs, owner });
  } catch (error) {
    if (error instanceof LockTimeoutError) {
      process.stderr.write(`session-flock: ${error.message}\n`);
      return 1;
    }
    throw error;
  }

  // The one deliberate inheritance of a lock descriptor: the command gets the
  // lock's open file description as fd 3 (the kernel lock belongs to that
  // description, not to a process), so it stays locked until the command and
  // everything that inherited fd 3 from it have closed it, even if this
  // process is killed. Windows cannot pass our handle through stdio, so there
  // this process keeps holding it until the command exits.
  const inherit = !values.close && process.platform !== 'win32';
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
  const env = { ...process.env };
  if (inherit) {
    // spawn() dup2()s it to fd 3, which is inheritable; the original stays close-on-exec.
    const fd = holdFor(lock).inheritableDescriptor(false);
    if (fd < 0) {
      lock.releaseSync();
      throw new Error(`could not pass the lock descriptor to the command (code ${fd})`);
    }
    stdio.push(fd);
    env.SESSION_FLOCK_FD = '3';
  } else {
    delete env.SESSION_FLOCK_FD;
  }

  return new Promise<number>((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio, env });
    const forward = (signal: NodeJS.Signals): void => {
      try {
        child.kill(signal);
      } catch {
        /* it is already gone */
      }
    };
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const signal of FORWARDED) {
      if (process.platform === 'win32' && signal === 'SIGHUP') continue;
      const handler = (): void => forward(signal);
      handlers.set(signal, handler);
      process.on(signal, handler);
    }
    const finish = (code: number): void => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
      lock.releaseSync();
      resolve(code);
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      process.stderr.write(`session-flock: cannot run ${command[0]}: ${error.message}\n`);
      finish(error.code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      if (signal !== null) finish(128 + (os.constants.signals[signal] ?? 0));
      else finish(code ?? 1);
    });
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'status':
        return await status(rest);
      case 'run':
        return await run(rest);
      case '--version':
      case '-V':
      case 'version':
        process.stdout.write(`${packageVersion()}\n`);
        return 0;
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE);
        return 0;
      case undefined:
        throw new UsageError('a command is needed');
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    const usage = error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) fail(`${(error as Error).message}\n\n${USAGE}`, EXIT_USAGE);
    fail((error as Error).message, 1);
  }
}

if (require.main === module) {
  process.title = 'session-flock';
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: Error) => fail(error.message, 1),
  );
}
