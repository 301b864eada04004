import * as fs from 'node:fs';
import * as path from 'node:path';

/** An open lock-file descriptor owned by the addon; closed by its finalizer if dropped. */
export interface NativeHandle {
  readonly __nativeHandle: unique symbol;
}

/**
 * The raw addon, exactly as native/binding.c exports it. Functions return 0 or
 * a negative code rather than throwing; the public layer turns codes into errors.
 */
export interface RawBinding {
  open(path: string, mode: number, create: boolean): NativeHandle | number;
  tryLock(handle: NativeHandle, shared: boolean): number;
  /**
   * Starts a blocking wait on an addon thread. `done` receives 0 (granted, and `path`
   * still names the locked file: the identity check runs on that thread), REPLACED
   * (granted on a replaced file: close and retry), CANCELLED, or an error code.
   */
  waitLock(handle: NativeHandle, shared: boolean, path: string, done: (code: number) => void): number;
  unlock(handle: NativeHandle): number;
  /** Idempotent. While a wait runs, the close (and the release of a late grant) is left to its thread. */
  close(handle: NativeHandle): number;
  sameFile(handle: NativeHandle, path: string): number;
  /** Returns the OS descriptor (fd or HANDLE value) or a negative code. */
  setInheritable(handle: NativeHandle, inheritable: boolean): number;
  errorName(code: number): string | undefined;
  errorErrno(code: number): number;
  waitsInFlight(): number;
  readonly WOULD_BLOCK: number;
  readonly REPLACED: number;
  readonly CANCELLED: number;
  readonly NOT_REGULAR: number;
  readonly INTERFACE_VERSION: number;
}

/** The shape of the addon this TypeScript was written against (native/binding.c). */
const INTERFACE_VERSION = 2;

const packageRoot = path.resolve(__dirname, '..', '..', '..');

function candidatePaths(): string[] {
  const tried = [
    path.join(packageRoot, 'build', 'Release', 'session_flock.node'),
    path.join(packageRoot, 'build', 'Debug', 'session_flock.node'),
  ];
  const prebuilds = path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  try {
    for (const file of fs.readdirSync(prebuilds)) if (file.endsWith('.node')) tried.push(path.join(prebuilds, file));
  } catch {
    tried.push(`${prebuilds}${path.sep} (no such folder)`);
  }
  return tried;
}

function libc(): string {
  if (process.platform !== 'linux') return 'n/a';
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? `glibc ${report.header.glibcVersionRuntime}` : 'musl (no glibc found)';
}

function load(): RawBinding {
  let loaded: RawBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
    loaded = nodeGypBuild(packageRoot) as RawBinding;
    if (loaded.INTERFACE_VERSION !== INTERFACE_VERSION) {
      // A stale build or prebuild next to newer JavaScript: fail clearly, not with odd lock errors.
      throw new Error(
        `${nodeGypBuild.resolve(packageRoot)} has interface version ${loaded.INTERFACE_VERSION ?? 'none'}, ` +
          `this session-flock needs ${INTERFACE_VERSION}: rebuild it (npm run build:native) or reinstall`,
      );
    }
    return loaded;
  } catch (cause) {
    const lines = candidatePaths().map((p) => `  - ${p}`);
    const error = new Error(
      `session-flock: could not load the native addon for platform=${process.platform} arch=${process.arch} ` +
        `libc=${libc()} node=${process.versions.node} napi=${process.versions.napi}.\n` +
        `Paths tried:\n${lines.join('\n')}\n` +
        `Cause: ${String((cause as Error)?.message ?? cause).split('\n')[0]}\n` +
        `Reinstall with a prebuild for this platform, or build from source with ` +
        `\`npm rebuild session-flock --build-from-source\` (needs Python 3, make and a C compiler).`,
      { cause },
    );
    (error as NodeJS.ErrnoException).code = 'ERR_SESSION_FLOCK_NO_BINDING';
    throw error;
  }
}

export const binding: RawBinding = load();
