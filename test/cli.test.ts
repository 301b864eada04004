// The `session-flock` CLI, run as a real process against locks held by real processes.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, fixture, freeInAnotherProcess, isAlive, otherProcess, root, tempDir } from './helpers';

const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');
const linux = process.platform === 'linux';
const posix = process.platform !== 'win32';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});
/** Kills, at the end of the test, a child (through its handle) or another process (see otherProcess). */
function killLater(doomed: ChildProcess | { kill(signal?: NodeJS.Signals): boolean }): void {
  cleanups.push(() => void doomed.kill('SIGKILL'));
}

function sessionFlock(args: string[], options: { cwd?: string } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Running, not a zombie: an orphaned command may wait unreaped when pid 1 does not reap. */
function running(pid: number): boolean {
  if (!isAlive(pid)) return false;
  if (!linux) return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A child process holding the lock of `target` (test/fixtures/inspect-holder.cjs). */
async function holder(target: string, options: Record<string, unknown> = {}): Promise<{ child: ChildProcess; pid: number; exited: Promise<unknown> }> {
  const child = fork(fixture('inspect-holder.cjs'), [target, JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  killLater(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const pid = await new Promise<number>((resolve, reject) => {
    child.on('message', (msg: any) => (msg.ready ? resolve(msg.pid) : msg.error && reject(new Error(msg.error.message))));
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return { child, pid, exited };
}

interface CommandReport {
  pid: number;
  lockFds: number[];
  fd3: { ino: number; dev: number } | null;
  env: string | null;
}

/** Starts `session-flock run ... <target> -- node cli-command.cjs <dir> <lockPath>` and waits until the command runs. */
async function startRun(dir: string, target: string, flags: string[] = []): Promise<{ cliProcess: ChildProcess; cliExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; report: CommandReport; stderr: () => string }> {
  const cliProcess = spawn(process.execPath, [cli, 'run', ...flags, target, '--', process.execPath, fixture('cli-command.cjs'), dir, `${target}.lock`], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  killLater(cliProcess);
  let stderr = '';
  cliProcess.stderr!.on('data', (d) => (stderr += d));
  const cliExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => cliProcess.once('exit', (code, signal) => resolve({ code, signal })));
  const reportPath = path.join(dir, 'cmd.json');
  await eventually(() => fs.existsSync(reportPath) || cliProcess.exitCode !== null, 20_000, 'the command to start');
  if (!fs.existsSync(reportPath)) throw new Error(`run exited early: ${stderr}`);
  const report = JSON.parse(fs.readFileSync(reportPath, 'utf8')) as CommandReport;
  killLater(otherProcess(report.pid));
  return { cliProcess, cliExit, report, stderr: () => stderr };
}

describe('session-flock status', () => {
  it.runIf(linux)('names the pid of the child holding the lock, from the kernel', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'a.jsonl');
    const h = await holder(target, { owner: 'agent:coder' });

    const json = await sessionFlock(['status', '--json', target]);
    expect(json.code).toBe(0);
    const [status] = JSON.parse(json.stdout);
    expect(status).toMatchObject({ lockPath: `${target}.lock`, state: 'held', mode: 'exclusive', owner: 'agent:coder', method: 'proc-locks' });
    expect(status.holders).toEqual([{ pid: h.pid, source: 'kernel', alive: true, sameProcess: false, mode: 'exclusive' }]);

    const table = await sessionFlock(['status', dir], { cwd: dir });
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^LOCK\s+STATE\s+MODE\s+PID\s+OWNER\s+HELD FOR\s+NOTES$/);
    expect(lines[1]).toMatch(new RegExp(`^a\\.jsonl\\.lock\\s+held\\s+exclusive\\s+${h.pid}\\s+agent:coder\\s+\\d`));
  });

  it('reports a free lock with a leftover record as free, with the stale note', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'k.jsonl');
    const h = await holder(target, { owner: 'agent:main' });
    h.child.kill('SIGKILL');
    await h.exited;
    const table = await sessionFlock(['status', dir], { cwd: dir });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`k\\.jsonl\\.lock\\s+free\\s+-\\s+-\\s+-\\s+-\\s+record left by pid ${h.pid}, which is not running`));
    for (const arg of [`${target}.lock`, target]) {
      const [status] = JSON.parse((await sessionFlock(['status', '--json', arg])).stdout);
      expect(status.lockPath).toBe(`${target}.lock`);
      expect(status.state).toBe('free');
      expect(status.record.pid).toBe(h.pid);
    }
  });

  it('-r descends into subfolders; a bad path fails with a clear message; hostile records stay on one line', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'sessions'));
    fs.writeFileSync(
      path.join(dir, 'sessions', 'x.jsonl.lock'),
      JSON.stringify({ pid: 999_999_999, hostname: os.hostname(), owner: 'evil\n\u001b[31mred\u001b[0m', nonce: 'x-1' }),
    );
    const flat = await sessionFlock(['status', dir]);
    expect(flat.code).toBe(0);
    expect(flat.stdout).toBe('no locks found\n');
    const deep = await sessionFlock(['status', '-r', dir], { cwd: dir });
    expect(deep.code).toBe(0);
    expect(deep.stdout).toMatch(/sessions\/x\.jsonl\.lock\s+free/);
    expect(deep.stdout).not.toContain('\u001b');
    expect(deep.stdout.trimEnd().split('\n')).toHaveLength(2);

    const bad = await sessionFlock(['status', path.join(dir, 'nope'), dir]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${path.join(dir, 'nope')}: no such file or folder`);
    const usage = await sessionFlock(['status']);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toBe("session-flock: status needs at least one file or folder\nTry 'session-flock --help' for more information.\n");
    const unknown = await sessionFlock(['status', '--frobnicate', dir]);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toBe("session-flock: Unknown option '--frobnicate'\nTry 'session-flock --help' for more information.\n");
    // A missing lock of an existing file is inspected (state missing), and not created.
    fs.writeFileSync(path.join(dir, 'plain.jsonl'), '');
    const missing = await sessionFlock(['status', '--json', path.join(dir, 'plain.jsonl')]);
    expect(missing.code).toBe(0);
    expect(JSON.parse(missing.stdout)[0].state).toBe('missing');
    expect(fs.existsSync(path.join(dir, 'plain.jsonl.lock'))).toBe(false);
  });

  it('--help and --version', async () => {
    const help = await sessionFlock(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('session-flock status [--json] [-r|--recursive] <file-or-dir>...');
    expect(help.stdout).toContain('session-flock run [options] <target> <command> [<argument>...]');
    expect(help.stdout).toContain('session-flock run [options] <target> -c <command string>');
    const version = await sessionFlock(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
    const none = await sessionFlock([]);
    expect(none.code).toBe(64);
    expect(none.stderr.trimEnd().split('\n')).toHaveLength(2);
  });
});

describe('session-flock run', () => {
  it('exits with the command status, and 128+N when the command dies of signal N', async () => {
    const target = path.join(tempDir(), 'e.jsonl');
    const ok = await sessionFlock(['run', target, '--', process.execPath, '-e', 'process.exit(0)']);
    expect(ok.code).toBe(0);
    const seven = await sessionFlock(['run', target, '--', process.execPath, '-e', 'process.exit(7)']);
    expect(seven.code).toBe(7);
    if (posix) {
      const killed = await sessionFlock(['run', target, '--', process.execPath, '-e', "process.kill(process.pid, 'SIGKILL')"]);
      expect(killed.code).toBe(128 + os.constants.signals.SIGKILL);
    }
    const missing = await sessionFlock(['run', target, '--', path.join(tempDir(), 'no-such-command')]);
    expect(missing.code).toBe(69);
    expect(missing.stderr).toMatch(/failed to execute/);
    // Every run let the lock go.
    expect(await freeInAnotherProcess(target)).toBe(true);
  });

  it('the command holds the lock while it runs, and sees it as fd 3', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'c.jsonl');
    const run = await startRun(dir, target, ['--owner', 'job:nightly']);
    expect(await freeInAnotherProcess(target)).toBe(false);
    if (posix) {
      const lockStat = fs.statSync(`${target}.lock`);
      expect(run.report.fd3).toEqual({ ino: lockStat.ino, dev: lockStat.dev });
      expect(run.report.env).toBe('3');
    }
    const [status] = JSON.parse((await sessionFlock(['status', '--json', target])).stdout);
    expect(status.state).toBe('held');
    expect(status.owner).toBe('job:nightly');
    if (linux) expect(status.holders.map((h: { pid: number }) => h.pid)).toContain(run.cliProcess.pid);
    fs.writeFileSync(path.join(dir, 'stop'), '5');
    expect((await run.cliExit).code).toBe(5);
    expect(await freeInAnotherProcess(target)).toBe(true);
  });

  it.runIf(posix)('SIGKILL of session-flock leaves the lock held by the running command, then free when it exits', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'r.jsonl');
    const run = await startRun(dir, target);
    run.cliProcess.kill('SIGKILL');
    expect((await run.cliExit).signal).toBe('SIGKILL');
    expect(running(run.report.pid)).toBe(true);
    expect(await freeInAnotherProcess(target)).toBe(false);

    const status = await sessionFlock(['status', '--json', target]);
    const [s] = JSON.parse(status.stdout);
    expect(s.state).toBe('held');
    if (linux) {
      // The kernel still names the (dead) locker; the inherited descriptor is found in the command.
      expect(s.holders).toContainEqual({ pid: run.cliProcess.pid, source: 'kernel', alive: false, sameProcess: false, mode: 'exclusive' });
      expect(s.holders).toContainEqual({ pid: run.report.pid, source: 'kernel', alive: true, sameProcess: false, mode: 'exclusive' });
      expect(s.notes.join('\n')).toContain(`held through its inherited descriptor by pid ${run.report.pid}`);
    }

    fs.writeFileSync(path.join(dir, 'stop'), '0');
    await eventually(() => freeInAnotherProcess(target), 20_000, 'the lock to be free once the command exited');
    expect(running(run.report.pid)).toBe(false);
  });

  it.runIf(posix)('--close: the command does not inherit the lock; killing session-flock frees it', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'o.jsonl');
    const run = await startRun(dir, target, ['--close']);
    const lockStat = fs.statSync(`${target}.lock`);
    expect(run.report.fd3).not.toEqual({ ino: lockStat.ino, dev: lockStat.dev }); // node may use fd 3 for itself
    expect(run.report.env).toBeNull();
    if (linux) expect(run.report.lockFds).toEqual([]);
    expect(await freeInAnotherProcess(target)).toBe(false);
    run.cliProcess.kill('SIGKILL');
    await run.cliExit;
    expect(running(run.report.pid)).toBe(true);
    await eventually(() => freeInAnotherProcess(target), 20_000, 'the lock to be free');
    fs.writeFileSync(path.join(dir, 'stop'), '0');
  });

  it.runIf(linux)('only the lock descriptor is passed on (as fd 3)', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'fd.jsonl');
    const run = await startRun(dir, target);
    // fd 3, and possibly the original descriptor number too: it is inheritable while the command runs.
    expect(run.report.lockFds).toContain(3);
    fs.writeFileSync(path.join(dir, 'stop'), '0');
    expect((await run.cliExit).code).toBe(0);
  });

  it('-w <seconds> and -n end with the conflict code in silence; with --verbose they name the holder and its owner', async () => {
    const dir = tempDir();
    const target = path.join(dir, 't.jsonl');
    const h = await holder(target, { owner: 'agent:busy' });
    const command = [target, process.execPath, '-e', 'process.exit(0)'];
    const result = await sessionFlock(['run', '-w', '0.3', ...command]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 1, stderr: '' });
    const once = await sessionFlock(['run', '-n', '-E', '3', ...command]);
    expect({ code: once.code, stderr: once.stderr }).toEqual({ code: 3, stderr: '' });
    const told = await sessionFlock(['run', '--verbose', '-w', '0.3', ...command]);
    expect(told.code).toBe(1);
    expect(told.stderr).toMatch(new RegExp(`^session-flock: timeout while waiting to get lock .*t\\.jsonl\\.lock \\(waited \\d+\\.\\d{6} seconds\\) — held by pid ${h.pid}\\b.*owner agent:busy`));
    const toldOnce = await sessionFlock(['run', '--verbose', '-n', ...command]);
    expect(toldOnce.code).toBe(1);
    expect(toldOnce.stderr).toMatch(new RegExp(`^session-flock: failed to get lock .*t\\.jsonl\\.lock \\(waited \\d+\\.\\d{6} seconds\\) — held by pid ${h.pid}\\b.*owner agent:busy`));
  });

  it('status --postgres with a connection string that is not a PostgreSQL URL says so, without connecting or echoing it', async () => {
    for (const bad of ['not a url', 'postgres://user:secret@host:port/db', 'mysql://user@host/db']) {
      const result = await sessionFlock(['status', '--postgres', bad]);
      expect(result.code, bad).toBe(64);
      expect(result.stderr.split('\n')[0]).toBe('session-flock: --postgres: the connection string is not a valid PostgreSQL URL (expected postgres://user:password@host:5432/database)');
      expect(result.stderr).not.toContain(bad.includes('secret') ? 'secret' : bad);
    }
  });

  it('without -w it waits for the holder however long it takes (the process stays alive)', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'inf.jsonl');
    const h = await holder(target);
    const waiting = sessionFlock(['run', target, process.execPath, '-e', 'process.exit(4)']);
    // It must still be waiting after the holder has held for a while, and take the lock when the holder dies.
    await new Promise((r) => setTimeout(r, 500));
    h.child.kill('SIGKILL');
    const result = await waiting;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(4);
  });

  it('--shared runs alongside another shared holder', async () => {
    const target = path.join(tempDir(), 'sh.jsonl');
    await holder(target, { shared: true });
    const shared = await sessionFlock(['run', '--shared', '--timeout', '5', target, '--', process.execPath, '-e', 'process.exit(3)']);
    expect(shared.code).toBe(3);
    const exclusive = await sessionFlock(['run', '--timeout', '0.2', target, '--', process.execPath, '-e', 'process.exit(0)']);
    expect(exclusive.code).toBe(1);
  });

  it.runIf(posix)('forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to the command (SIGUSR1 never opens the inspector)', async () => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) {
      const dir = tempDir();
      const target = path.join(dir, `sig-${signal}.jsonl`);
      const run = await startRun(dir, target);
      run.cliProcess.kill(signal);
      expect((await run.cliExit).code).toBe(42);
      expect(run.stderr()).toBe('');
      expect(fs.readFileSync(path.join(dir, `got-${signal}`), 'utf8')).toBe(String(run.report.pid));
      expect(await freeInAnotherProcess(target)).toBe(true);
    }
  });

  it('rejects bad usage with exit 64, in one line and a hint', async () => {
    const target = path.join(tempDir(), 'u.jsonl');
    for (const args of [
      ['run'],
      ['run', target],
      ['run', target, '--'],
      ['run', '--timeout', 'soon', target, '--', 'true'],
      ['run', '--timeout', '-1', target, '--', 'true'],
      ['run', '--bogus', target, '--', 'true'],
      ['run', '', 'true'],
    ]) {
      const result = await sessionFlock(args);
      expect(result.code, args.join(' ')).toBe(64);
      expect(result.stderr).toMatch(/^session-flock: [^\n]+\nTry 'session-flock run --help' for more information\.\n$/);
    }
    expect(fs.existsSync(`${target}.lock`)).toBe(false);
  });
});

describe('npm run demo', () => {
  it('runs the whole story in seconds and removes its temp folder', async () => {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(root, 'scripts', 'demo.mjs')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const pidA = /A: holding the lock \(pid (\d+)\)/.exec(result.stdout)?.[1];
    expect(pidA).toBeDefined();
    expect(result.stdout).toMatch(new RegExp(`LockTimeoutError: timed out after 1500ms waiting for .*\\.jsonl\\.lock — held by pid ${pidA}.*owner agent:writer`));
    expect(result.stdout).toMatch(new RegExp(`held\\s+exclusive\\s+${pidA}\\s+agent:writer`));
    expect(result.stdout).toMatch(/B: got the lock \d+ms after A was killed/);
    expect(result.stdout).toMatch(/held\s+exclusive\s+\d+\s+agent:second/);
    expect(result.stdout).toMatch(/, 0 torn/);
    const folder = /temp folder (\S+)/.exec(result.stdout)?.[1];
    expect(folder).toBeDefined();
    expect(fs.existsSync(folder!)).toBe(false);
  });
});
