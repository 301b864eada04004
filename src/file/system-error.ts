import * as util from 'node:util';

// Node-style fs errors for the addon's codes, with this package's own texts for its own codes.

let descriptions: Map<string, string> | undefined;
let uvErrnos: Map<string, number> | undefined;

/**
 * libuv's number for a code the OS has none for here (EFTYPE is BSD's; Linux and Windows
 * lack it), so that every fs error carries an `errno` as Node's own do: -4028 for EFTYPE.
 */
export function uvErrno(name: string): number | undefined {
  if (uvErrnos === undefined) {
    uvErrnos = new Map();
    for (const [errno, [errName]] of util.getSystemErrorMap()) if (!uvErrnos.has(errName)) uvErrnos.set(errName, errno);
  }
  return uvErrnos.get(name);
}

const ownDescriptions: Record<string, string> = {
  EFTYPE: 'lock path is not a regular file (a FIFO, device, socket, or a file under /proc or /sys)',
  ELOOP: 'lock path is a symbolic link, which is never followed',
  ECANCELED: 'operation canceled',
};

function describeCode(name: string): string {
  if (ownDescriptions[name]) return ownDescriptions[name];
  if (descriptions === undefined) {
    descriptions = new Map();
    for (const [, [errName, message]] of util.getSystemErrorMap()) descriptions.set(errName, message);
  }
  return descriptions.get(name) ?? 'unknown error';
}

/** A Node-style fs error: `ENOENT: no such file or directory, open '/x.lock'`, with code, errno, syscall, path. */
export function systemError(
  name: string,
  osErrno: number,
  syscall: string,
  path: string,
): NodeJS.ErrnoException {
  const error = new Error(`${name}: ${describeCode(name)}, ${syscall} '${path}'`) as NodeJS.ErrnoException;
  error.code = name;
  error.errno = osErrno === 0 ? uvErrno(name) : process.platform === 'win32' ? osErrno : -osErrno;
  error.syscall = syscall;
  error.path = path;
  Error.captureStackTrace(error, systemError);
  return error;
}

