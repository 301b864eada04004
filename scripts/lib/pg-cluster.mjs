// A throwaway PostgreSQL cluster for the tests and the bench: Debian's initdb +
// pg_ctl, listening on 127.0.0.1 at a free port with its socket directory in a
// temp folder, fsync off, removed when stopped. SESSION_FLOCK_TEST_PG_URL, when
// set, is used instead and nothing is started.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const URL_VARIABLE = 'SESSION_FLOCK_TEST_PG_URL';
export const REQUIRE_VARIABLE = 'SESSION_FLOCK_REQUIRE_PG';

function debianServerDirs() {
  try {
    const versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    return versions.map((v) => path.join('/usr/lib/postgresql', v, 'bin'));
  } catch {
    return []; // not Debian-style, or PostgreSQL is not installed
  }
}

/** The bin directory of the newest PostgreSQL server installed the Debian way (or only PG_BINDIR when set), or null. */
export function findServerBinaries() {
  const candidates = process.env.PG_BINDIR ? [process.env.PG_BINDIR] : debianServerDirs();
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl'))) ?? null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * initdb refuses to run as root. As root, the cluster runs as the `postgres`
 * user that Debian's package creates (or `nobody`), dropped to with setpriv
 * (util-linux), and the temp folder is handed to that user.
 */
function serverUser() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    const id = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    if (id.status === 0 && gid.status === 0) return { name, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
  throw new Error('running as root and there is no postgres or nobody user to run the throwaway PostgreSQL cluster as');
}

function runAs(user, file, args, options = {}) {
  const [cmd, argv] = user === null ? [file, args] : ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', file, ...args]];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

function runAsAsync(user, file, args) {
  const [cmd, argv] = user === null ? [file, args] : ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', file, ...args]];
  return new Promise((resolve, reject) =>
    execFile(cmd, argv, { encoding: 'utf8' }, (error, stdout, stderr) => (error ? reject(new Error(`${cmd} ${argv.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout))),
  );
}

/** Why a command failed: its message (with its stderr), the signal that ended it, the log's tail. */
function explain(error, log) {
  const stderr = error.stderr ? String(error.stderr).trim() : '';
  const message = stderr !== '' ? error.message.replace(stderr, '').trim() : error.message;
  const signal = error.signal ? `(ended by ${error.signal}: no output of its own)` : '';
  let tail = '';
  try {
    if (log !== null) tail = fs.readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    // no log yet
  }
  return [message, signal, stderr, tail].filter(Boolean).join('\n');
}

/** The postmaster's pid (first line of postmaster.pid) and every process whose parent it is. */
function serverPids(data) {
  const postmaster = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: the fields after its last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return [postmaster, ...children];
}

/**
 * Starts a cluster; resolves to { url, port, dir, stop(), restart(), serverPids() } (stop is
 * synchronous and idempotent).
 * `listen`: listen_addresses; `trustNetworks`: CIDRs whose clients are trusted besides localhost.
 * Rejects with an Error whose message says why.
 */
export async function startCluster({ bindir = findServerBinaries(), listen = '127.0.0.1', trustNetworks = [] } = {}) {
  if (bindir === null) {
    throw new Error(
      process.env.PG_BINDIR
        ? `no initdb and pg_ctl in PG_BINDIR=${process.env.PG_BINDIR}`
        : 'no PostgreSQL server found (no /usr/lib/postgresql/*/bin/initdb; install the Debian package postgresql)',
    );
  }
  const user = serverUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-flock-pg-'));
  if (user !== null) {
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, user.uid, user.gid);
  }
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  let started = false;
  const stop = () => {
    if (started) {
      started = false;
      try {
        runAs(user, path.join(bindir, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30']);
      } catch {
        // already gone; the folder goes anyway
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    try {
      runAs(user, path.join(bindir, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    } catch (error) {
      throw new Error(`initdb failed: ${explain(error, null)}`);
    }
    // Clients from these networks (a test's network namespace) are trusted too.
    for (const network of trustNetworks) fs.appendFileSync(path.join(data, 'pg_hba.conf'), `host all all ${network} trust\n`);
    // A port taken between freePort() and the server's bind is the only reason to try another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const settings = [
        `-p ${port}`,
        `-k ${dir}`,
        `-c listen_addresses=${listen}`,
        '-c fsync=off',
        '-c shared_buffers=16MB',
        '-c max_connections=100',
      ].join(' ');
      try {
        runAs(user, path.join(bindir, 'pg_ctl'), ['start', '-D', data, '-l', log, '-w', '-t', '60', '-o', settings]);
        started = true;
        // Asynchronous, so that the caller's event loop sees the sessions end and the refusals meanwhile.
        const pgCtl = (args) => runAsAsync(user, path.join(bindir, 'pg_ctl'), [...args, '-D', data]);
        return {
          url: `postgres://postgres@127.0.0.1:${port}/postgres`,
          port,
          dir,
          stop,
          /** Fast shutdown then start again on the same port: every session ends (57P01), then refused, then back. */
          restart: () => pgCtl(['restart', '-m', 'fast', '-w', '-t', '60', '-l', log, '-o', settings]),
          /** Fast shutdown (every session ends, then connections are refused) and start again. */
          shutdown: () => pgCtl(['stop', '-m', 'fast', '-w', '-t', '60']),
          start: () => pgCtl(['start', '-w', '-t', '60', '-l', log, '-o', settings]),
          /** The postmaster and its children (backends and auxiliary processes), for SIGSTOP/SIGCONT. */
          serverPids: () => serverPids(data),
        };
      } catch (error) {
        const why = explain(error, log);
        if (attempt < 3 && /could not bind|address already in use/i.test(why)) continue;
        throw new Error(`pg_ctl start failed: ${why}`);
      }
    }
  } catch (error) {
    stop();
    throw error;
  }
}

/**
 * What the tests and the bench use: { url, stop, why }. url is the configured
 * server, a started one, or null with `why` saying what is missing.
 */
export async function provideServer() {
  const configured = process.env[URL_VARIABLE];
  if (configured) return { url: configured, stop: () => undefined, why: null };
  try {
    const cluster = await startCluster();
    return { url: cluster.url, stop: cluster.stop, why: null };
  } catch (error) {
    return { url: null, stop: () => undefined, why: error.message };
  }
}
