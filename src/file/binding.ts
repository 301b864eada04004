import * as fs from 'node:fs';
import * as path from 'node:path';
import { INTERFACE_VERSION } from './interface-version';
import { uvErrno } from './system-error';

/**
 * An open lock-file descriptor of the addon, named by a number (≥ 1) that no later
 * handle reuses. Nothing closes it but close() (or the end of the thread that opened
 * it), so every path that opens one closes it or hands it on.
 */
export type NativeHandle = number & { readonly __nativeHandle: unique symbol };

/** Whether open() returned a handle rather than a negative code. */
export function isHandle(opened: number): opened is NativeHandle {
  return opened > 0;
}

/** The completion callback of binding.waitLock(). */
export type WaitDone<C> = (this: C, handle: NativeHandle, code: number, grantedAt: number, path: string | undefined) => void;

/**
 * The raw addon, exactly as native/binding.c exports it. Functions return 0 or
 * a negative code rather than throwing; the public layer turns codes into errors.
 */
export interface RawBinding {
  open(path: string, mode: number, create: boolean): number;
  /**
   * One attempt. 0 when `handle` now holds the lock and `path` still names its file, with
   * the record of a grant at `now` (epoch ms) written if `recordFields` (see record.ts) is
   * given; NOT_EMPTY when it holds it but the file holds data, so no record was written;
   * REPLACED when the lock was taken on a file the path no longer names (close and
   * reopen); WOULD_BLOCK; or a negative code.
   */
  tryLock(handle: NativeHandle, shared: boolean, path: string, recordFields: Buffer | null, serial: number, now: number): number;
  /**
   * Starts a blocking wait on an addon thread, which ends with
   * `done.call(context, handle, code, grantedAt, path)` (one function may serve every
   * wait: no closure per wait). `code` is 0 (granted, `path` still names the locked file,
   * and the record is written if `recordFields` is given: the identity check and the
   * record run on that thread), NOT_EMPTY (granted, but the file holds data: no record
   * written), REPLACED (granted on a replaced file: close and retry), CANCELLED, or an
   * error code. Granted, `grantedAt` is when the kernel granted it (epoch ms) and `path`
   * is undefined; else 0 and the path the wait was started with. A granted wait then calls
   * `done` once more with code AFTER_GRANT, in the same turn of the event loop but after
   * the promises the first call resolved (and what they chained) have run.
   */
  waitLock<C extends object>(
    handle: NativeHandle,
    shared: boolean,
    path: string,
    context: C,
    done: WaitDone<C>,
    recordFields: Buffer | null,
    serial: number,
  ): number;
  unlock(handle: NativeHandle): number;
  /** Idempotent. While a wait runs, the close (and the release of a late grant) is left to its thread. Calls with a closed handle return CANCELLED (unlock and close: 0). */
  close(handle: NativeHandle): number;
  /**
   * Lets go of a hold in one call: empties the file (RELEASE_CLEAR_RECORD) or unlinks
   * `path` if it still names the file (RELEASE_REMOVE_FILE), while still holding the
   * lock, then closes. With RELEASE_SHARED either happens only if the lock can be taken
   * exclusively at once (no other holder). The close's 0 or a negative code.
   */
  release(handle: NativeHandle, how: number, path: string): number;
  /** Replaces whatever the held file holds with `text` (truncating): 0 or a negative code. */
  writeRecord(handle: NativeHandle, text: string): number;
  sameFile(handle: NativeHandle, path: string): number;
  /** The identity of the open file as text (the same for every path to it); "" when the filesystem gives none. */
  fileKey(handle: NativeHandle): string | number;
  /** The same identity for the file `path` itself names (a symlink is not followed), or a negative code. */
  pathKey(path: string): string | number;
  /** Returns the OS descriptor (fd or HANDLE value) or a negative code. */
  setInheritable(handle: NativeHandle, inheritable: boolean): number;
  errorName(code: number): string | undefined;
  errorErrno(code: number): number;
  waitsInFlight(): number;
  readonly WOULD_BLOCK: number;
  readonly REPLACED: number;
  readonly CANCELLED: number;
  readonly NOT_REGULAR: number;
  readonly NOT_EMPTY: number;
  /** The code of a granted wait's second call of `done` (see waitLock). */
  readonly AFTER_GRANT: number;
  readonly RELEASE_CLEAR_RECORD: number;
  readonly RELEASE_REMOVE_FILE: number;
  readonly RELEASE_SHARED: number;
  readonly INTERFACE_VERSION: number;
}


const packageRoot = path.resolve(__dirname, '..', '..', '..');

/**
 * Every place node-gyp-build looks, in its order (see its resolve()): the
 * SESSION_FLOCK_PREBUILD override, build/Release, build/Debug (unless PREBUILDS_ONLY),
 * then prebuilds/<platform>-<arch...>/ of the package and of the folder holding node.
 */
function candidatePaths(): string[] {
  const platform = process.env.npm_config_platform || process.platform;
  const arch = process.env.npm_config_arch || process.arch;
  const dir = process.env.SESSION_FLOCK_PREBUILD || packageRoot;
  const tried: string[] = [];
  if (!process.env.PREBUILDS_ONLY) {
    for (const flavor of ['Release', 'Debug']) tried.push(path.join(dir, 'build', flavor, 'session_flock.node'));
  }
  for (const base of [dir, path.dirname(process.execPath)]) {
    const prebuilds = path.join(base, 'prebuilds');
    let folders: string[];
    try {
      folders = fs.readdirSync(prebuilds).filter((name) => {
        const [p, archs = ''] = name.split('-');
        return p === platform && archs.split('+').includes(arch);
      });
    } catch {
      folders = [];
    }
    if (folders.length === 0) tried.push(`${path.join(prebuilds, `${platform}-${arch}`)}${path.sep} (no such folder)`);
    for (const folder of folders) {
      const files = fs.readdirSync(path.join(prebuilds, folder)).filter((file) => file.endsWith('.node'));
      if (files.length === 0) tried.push(`${path.join(prebuilds, folder)}${path.sep} (no .node file)`);
      for (const file of files) tried.push(path.join(prebuilds, folder, file));
    }
  }
  return tried;
}

function libc(): string {
  if (process.platform !== 'linux') return 'n/a';
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? `glibc ${report.header.glibcVersionRuntime}` : 'musl (no glibc found)';
}

/**
 * Loads the addon. Throws ERR_SESSION_FLOCK_NO_BINDING, listing every path tried,
 * when none loads; tries again on the next call (nothing is cached but success).
 */
export function loadBinding(): RawBinding {
  if (binding !== notLoaded) return binding;
  let loaded: RawBinding;
  try {
    const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
    loaded = nodeGypBuild(packageRoot) as RawBinding;
    if (loaded.INTERFACE_VERSION !== INTERFACE_VERSION) {
      // A stale build or prebuild next to newer JavaScript: fail clearly, not with odd lock errors.
      throw new Error(
        `${nodeGypBuild.resolve(packageRoot)} has interface version ${loaded.INTERFACE_VERSION ?? 'none'}, ` +
          `the installed session-flock JavaScript needs ${INTERFACE_VERSION}: rebuild it (npm run build:native) or reinstall`,
      );
    }
    binding = loaded;
    return loaded;
  } catch (cause) {
    // With every descriptor in use the addon is there but cannot be opened: that is the
    // caller's EMFILE (as the open of a lock file would give), not a missing binding.
    const exhausted = descriptorExhaustion(cause);
    if (exhausted !== null) throw exhausted;
    const lines = candidatePaths().map((p) => `  - ${p}`);
    const error = new Error(
      `could not load the session-flock native addon for platform=${process.platform} arch=${process.arch} ` +
        `libc=${libc()} node=${process.versions.node} napi=${process.versions.napi}.\n` +
        `Paths tried:\n${lines.join('\n')}\n` +
        `Cause: ${String((cause as Error)?.message ?? cause).split('\n')[0]}\n` +
        `Reinstall with a prebuild for this platform, or build from source with ` +
        `\`npm explore session-flock -- npm run build:native\` (needs Python 3, make and a C compiler).`,
      { cause },
    );
    (error as NodeJS.ErrnoException).code = 'ERR_SESSION_FLOCK_NO_BINDING';
    throw error;
  }
}

function descriptorExhaustion(cause: unknown): NodeJS.ErrnoException | null {
  const { code, message } = (cause ?? {}) as NodeJS.ErrnoException;
  if (code === 'EMFILE' || code === 'ENFILE') return cause as NodeJS.ErrnoException;
  const match = /Too many open files( in system)?/.exec(String(message));
  if (match === null) return null;
  const errorCode = match[1] ? 'ENFILE' : 'EMFILE';
  const error: NodeJS.ErrnoException = new Error(`${errorCode}: too many open files, while loading the session-flock addon`, { cause });
  error.code = errorCode;
  error.errno = uvErrno(errorCode);
  error.syscall = 'dlopen';
  return error;
}

/**
 * Stands in for the addon until its first use, so that importing session-flock never
 * throws (an ESM importer could not catch it): reading any member loads the addon,
 * which then replaces this stand-in as `binding`, or throws ERR_SESSION_FLOCK_NO_BINDING.
 */
const notLoaded = new Proxy({} as RawBinding, {
  get(_stub, key) {
    const real = loadBinding() as unknown as Record<string | symbol, unknown>;
    const value = real[key];
    return typeof value === 'function' ? value.bind(real) : value;
  },
});

/** The addon (a live export: the stand-in above until the first use loads it). */
export let binding: RawBinding = notLoaded;
