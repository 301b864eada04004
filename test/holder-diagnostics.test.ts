// What a timeout error and `session-flock status` say about a holder when the
// holder record cannot be trusted: a dead writer, no record, hostile text,
// temp records left by writers killed mid-write. Real processes throughout.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, fixture, otherProcess, root, runNode, startLocker, tempDir, dist } from './helpers';
import { acquire, LockTimeoutError } from '../dist/cjs/index.js';

const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');
const linux = process.platform === 'linux';
// Terminal escapes, line breaks and bidi overrides (what displayText() replaces).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function started(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

async function timeoutError(target: string): Promise<LockTimeoutError> {
  const error = await acquire(target, { timeoutMs: 0 }).catch((e) => e);
  expect(error).toBeInstanceOf(LockTimeoutError);
  return error;
}

/** A node process that writes its pid to `readyFile` and then idles until killed. */
function idleNode(readyFile: string): string[] {
  // Written whole and then renamed: a reader that sees the file never reads half a pid.
  const temp = `${readyFile}.tmp`;
  return [process.execPath, '-e', `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(temp)}, String(process.pid)); fs.renameSync(${JSON.stringify(temp)}, ${JSON.stringify(readyFile)}); setInterval(() => {}, 1000)`];
}

function readPid(file: string): number {
  return Number(fs.readFileSync(file, 'utf8'));
}

const canUnshare = linux && process.getuid?.() === 0 && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

describe('LockTimeoutError names the live holder when the record cannot', () => {
  it.runIf(linux)('session-flock run killed: names the command that inherited the lock, with the record owner', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'r.jsonl');
    const run = started(
      spawn(process.execPath, [cli, 'run', target, '--', process.execPath, fixture('cli-command.cjs'), dir, `${target}.lock`], { stdio: 'ignore' }),
    );
    const reportPath = path.join(dir, 'cmd.json');
    await eventually(() => fs.existsSync(reportPath) && fs.existsSync(`${target}.lock`) && fs.statSync(`${target}.lock`).size > 0, 20_000, 'the command to start');
    const command = JSON.parse(fs.readFileSync(reportPath, 'utf8')) as { pid: number };
    const record = JSON.parse(fs.readFileSync(`${target}.lock`, 'utf8'));
    expect(record.pid).toBe(run.pid);
    run.kill('SIGKILL');
    await exited(run);
    try {
      const error = await timeoutError(target);
      expect(error.holder).toMatchObject({ pid: command.pid, owner: record.owner, mode: 'exclusive', sameProcess: false });
      expect(error.holder?.process).toBe(path.basename(process.execPath).slice(0, 15));
      expect(error.message).toContain(`held by pid ${command.pid} (${error.holder?.process}), owner ${record.owner}, for `);
      expect(error.message).not.toContain(`pid ${run.pid}`);
    } finally {
      fs.writeFileSync(path.join(dir, 'stop'), '0');
    }
  });

  it.runIf(linux)('no record (util-linux flock(1)): names the kernel holder, then the heir of its descriptor', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'f.jsonl');
    const ready = path.join(dir, 'ready');
    const flock = started(spawn('flock', ['--exclusive', `${target}.lock`, ...idleNode(ready)], { stdio: 'ignore' }));
    await eventually(() => fs.existsSync(ready), 20_000, 'flock(1) to run its command');
    const heir = readPid(ready);
    const heirProcess = otherProcess(heir);
    children.push({ exitCode: null, signalCode: null, kill: () => heirProcess.kill('SIGKILL') } as unknown as ChildProcess);

    const first = await timeoutError(target);
    expect(first.holder).toMatchObject({ pid: flock.pid, owner: null, process: 'flock', mode: 'exclusive', sameProcess: false });
    expect(first.message).toMatch(new RegExp(`— held by pid ${flock.pid} \\(flock\\)$`));

    // flock(1) dies; the command it ran keeps the lock through the inherited descriptor.
    flock.kill('SIGKILL');
    await exited(flock);
    const second = await timeoutError(target);
    expect(second.holder).toMatchObject({ pid: heir, owner: null, mode: 'exclusive' });
    expect(second.message).toContain(`held by pid ${heir} (`);
  });

  it.runIf(canUnshare)('says plainly that the holder is unknown when the kernel cannot name it (another pid namespace)', async () => {
    const target = path.join(tempDir(), 'n.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { owner: 'agent:outside' } });
    // In a new pid namespace with its own /proc, the holder's pid means nothing and /proc/locks does not list its lock.
    const script = `require(${JSON.stringify(dist)}).acquire(${JSON.stringify(target)}, { timeoutMs: 0 })
      .then(() => console.log('acquired'), (e) => console.log(JSON.stringify({ name: e.name, holder: e.holder, message: e.message })));`;
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = started(spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(result.code, result.stderr).toBe(0);
    const error = JSON.parse(result.stdout);
    expect(error.name).toBe('LockTimeoutError');
    expect(error.holder).toBeNull();
    expect(error.message).toMatch(
      new RegExp(`— holder unknown \\(the record names pid ${holder.pid}, which is not running; the kernel lists no holder visible from this process\\)$`),
    );
    await holder.call({ op: 'release', id });
  });
});

describe('record text is shown sanitized', () => {
  it('owner, argv0 and title reach LockTimeoutError.message and the CLI stderr without escapes or line breaks', async () => {
    const target = path.join(tempDir(), 'h.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { record: false } });
    const owner = 'evil\u001b[2J\rsession-flock: forged\nline\u202eright-to-left';
    // A hostile record naming the live holder, so it is believed.
    fs.writeFileSync(
      `${target}.lock`,
      JSON.stringify({ pid: holder.pid, owner, mode: 'exclusive', acquiredAt: Date.now(), process: { argv0: '\u001b]0;pwned\u0007node', title: 'ti\u009btle' }, nonce: 'x-1' }),
    );
    const error = await timeoutError(target);
    expect(error.holder?.owner).toBe(owner); // the structured field keeps the data; only what is shown is cleaned
    expect(error.message).not.toMatch(UNSAFE);
    expect(error.message).toContain(`held by pid ${holder.pid} (?]0;pwned?node ti?tle), owner evil?[2J?session-flock: forged?line?right-to-left, for `);

    const cliRun = await runNode([cli, 'run', '--verbose', '--timeout', '0', target, '--', process.execPath, '-e', '0']);
    expect(cliRun.code).toBe(1);
    expect(cliRun.stderr.endsWith('\n')).toBe(true);
    expect(cliRun.stderr.slice(0, -1)).not.toMatch(UNSAFE);
    expect(cliRun.stderr).toContain('owner evil?[2J?session-flock: forged?line');

    await holder.call({ op: 'release', id });
  });

  it('status --json survives a ~60 KB deeply nested record; one bad record never suppresses the others', async () => {
    const dir = tempDir();
    const depth = 10_000;
    const deep = `{"pid":5,"nonce":"n-1","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    expect(deep.length).toBeGreaterThan(55_000);
    expect(deep.length).toBeLessThan(64 * 1024); // under the record size cap: it is read and parsed
    fs.writeFileSync(path.join(dir, 'a.jsonl.lock'), deep);
    fs.writeFileSync(path.join(dir, 'b.jsonl.lock'), JSON.stringify({ pid: 7, owner: 'agent:b', extra: { nested: [1, 2] }, nonce: 'n-2' }));
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target: path.join(dir, 'c.jsonl'), options: { owner: 'agent:c' } });

    const json = await runNode([cli, 'status', '--json', dir]);
    expect(json.code, json.stderr).toBe(0);
    const statuses = JSON.parse(json.stdout) as { lockPath: string; state: string; record: unknown; owner: string | null }[];
    expect(statuses.map((s) => path.basename(s.lockPath))).toEqual(['a.jsonl.lock', 'b.jsonl.lock', 'c.jsonl.lock']);
    expect(statuses[0].record).toEqual({ pid: 5, nonce: 'n-1' }); // only the known fields of a record are kept
    expect(statuses[1].record).toEqual({ pid: 7, owner: 'agent:b', nonce: 'n-2' });
    expect(statuses[2]).toMatchObject({ state: 'held', owner: 'agent:c' });

    const table = await runNode([cli, 'status', dir]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/a\.jsonl\.lock +free/);
    expect(table.stdout).toMatch(/c\.jsonl\.lock +held/);
    await holder.call({ op: 'release', id });
  });
});

describe('reading the kernel lock table while others lock', () => {
  it.runIf(linux)('lists each lock once, although /proc/locks can repeat a record when a lock comes or goes mid-read', async () => {
    const { readProcLocks } = await import('../dist/cjs/file/proc-locks.js');
    const dir = tempDir();
    const ready = path.join(dir, 'ready');
    const holders = Array.from({ length: 8 }, (_, i) =>
      started(spawn('flock', [path.join(dir, `h${i}.lock`), 'sh', '-c', `echo > ${ready}${i}; exec sleep 60`], { stdio: 'ignore' })),
    );
    await eventually(() => holders.every((_, i) => fs.existsSync(`${ready}${i}`)), 20_000, 'the flock(1) holders');
    const inodes = new Set(holders.map((_, i) => BigInt(fs.statSync(path.join(dir, `h${i}.lock`)).ino)));
    // Another locker takes and drops a lock in a loop, so the table changes during reads.
    // It stops at a stop file, before the test ends, so nothing recreates a file while the folder is removed.
    const stop = path.join(dir, 'stop');
    const churn = started(spawn('sh', ['-c', `while [ ! -e ${stop} ]; do flock ${path.join(dir, 'churn.lock')} true; done`], { stdio: 'ignore' }));
    let repeated = 0;
    let reads = 0;
    for (const deadline = Date.now() + 5_000; Date.now() < deadline; reads++) {
      const table = readProcLocks();
      if (!table.ok) throw new Error(table.reason);
      const ours = table.locks.filter((lock) => inodes.has(lock.inode));
      if (ours.length !== inodes.size) repeated++;
    }
    fs.writeFileSync(stop, '');
    await exited(churn);
    expect(reads).toBeGreaterThan(100);
    expect(repeated, `${repeated} of ${reads} reads listed one of our 8 locks twice (or missed one)`).toBe(0);
  });
});
