#!/usr/bin/env node
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { displayText } from '../core/display-text';
import { inspectMany, listLocks, type LockStatus } from '../file/inspect';
import { isLockPath, lockPathOf, targetOf } from '../file/lock-path';
import { EXIT_USAGE, UsageError } from './args';
import { parseRunArgs, RUN_HELP, runCommand } from './run';
import { durationCell, formatColumns } from './table';
import { say } from './say';
import { POSTGRES_USAGE, statusPostgres } from './status-postgres';

const USAGE = `Usage:
  session-flock status [--json] [-r|--recursive] <file-or-dir>...
  session-flock status --postgres <url> [--namespace <ns>] [--json]
  session-flock run [options] <target> <command> [<argument>...]
  session-flock run [options] <target> -c <command string>
  session-flock --help | --version

status  Shows every lock, free or held: who holds it (from the kernel on Linux),
        in which mode, the owner label, for how long, and notes such as stale
        holder records. A <file> means the lock of that file (<file>.lock) or a
        lock file itself; a <dir> means every *.lock in it (-r: and below).
        --json prints the LockStatus array. Exit 0 when everything could be
        inspected, 1 when an argument could not be.
${POSTGRES_USAGE}
run     Takes the lock of <target> (<target>.lock, or <target> itself when it
        ends in .lock), runs the command holding it, and exits with its status,
        with util-linux flock(1)'s options and exit codes:
        -s/-x, -n, -w <secs>, -E <n>, -o, -c <string>, --owner <label>.
        See: session-flock run --help

Usage errors exit 64.
`;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function fail(message: string, code: number): never {
  say(message);
  process.exit(code);
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
    displayText(displayPath(s.lockPath), 200),
    s.state,
    s.mode ?? '-',
    pidColumn(s),
    s.owner === null ? '-' : displayText(s.owner, 40),
    durationCell(s.heldForMs),
    s.notes.length === 0 ? '' : displayText(s.notes.join('; '), 400),
  ]);
  return `${formatColumns(header, rows)}\n`;
}

async function status(argv: string[]): Promise<number> {
  if (argv.some((a) => a === '--postgres' || a.startsWith('--postgres='))) return statusPostgres(argv);
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
    const absolute = path.resolve(arg);
    let stat: fs.Stats | null = null;
    try {
      stat = fs.statSync(absolute);
    } catch {
      stat = null;
    }
    try {
      if (stat?.isDirectory()) {
        results.push(...(await listLocks(absolute, { recursive: values.recursive })));
      } else if (isLockPath(absolute) && stat !== null) {
        results.push(...inspectMany([{ target: targetOf(absolute), lockPath: absolute }]));
      } else if (stat !== null || fs.existsSync(lockPathOf(absolute))) {
        results.push(...inspectMany([{ target: absolute }]));
      } else {
        say(`${arg}: no such file or folder, and no ${arg}.lock`);
        failed = true;
      }
    } catch (error) {
      say(`${arg}: ${(error as Error).message}`);
      failed = true;
    }
  }
  if (values.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else if (results.length === 0 && !failed) process.stdout.write('no locks found\n');
  else if (results.length > 0) process.stdout.write(formatTable(results));
  return failed ? 1 : 0;
}

async function run(argv: string[]): Promise<number> {
  const parsed = parseRunArgs(argv);
  if (parsed.kind === 'help') {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  return runCommand(parsed);
}

/** One line for a usage error: node:util's parser messages go up to their first sentence. */
function usageLine(error: Error): string {
  if (error instanceof UsageError) return error.message;
  return error.message.split(/\.(?: |$)|\n/)[0];
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
        throw new UsageError('a command is needed: status or run');
      default:
        throw new UsageError(`unknown command '${command}' (commands: status, run)`);
    }
  } catch (error) {
    const usage = error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    if (!usage) fail((error as Error).message, 1);
    const help = error instanceof UsageError && error.command !== undefined ? `session-flock ${error.command} --help` : 'session-flock --help';
    fail(`${usageLine(error as Error)}\nTry '${help}' for more information.`, EXIT_USAGE);
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
