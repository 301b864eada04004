import * as fs from 'node:fs';
import * as path from 'node:path';
import { LockUnsupportedError, systemError } from '../core/errors';
import { binding } from './binding';

const UNSUPPORTED = new Set(['ENOLCK', 'EOPNOTSUPP', 'ENOTSUP', 'ENOSYS']);

// statfs f_type magic numbers of the filesystems where locking questions come up.
const FILESYSTEMS: Record<number, string> = {
  0x6969: 'nfs',
  0xff534d42: 'cifs',
  0xfe534d42: 'smb2',
  0x517b: 'smb',
  0x65735546: 'fuse',
  0x01021997: 'v9fs (9p)',
  0x01021994: 'tmpfs',
  0xef53: 'ext2/3/4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x5346544e: 'ntfs',
  0x4d44: 'vfat',
  0x1badface: 'bfs',
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
};

/** The filesystem type of the folder holding `file`, when the OS tells. */
export function filesystemType(file: string): string | null {
  try {
    const type = fs.statfsSync(path.dirname(file)).type >>> 0;
    return FILESYSTEMS[type] ?? `type 0x${type.toString(16)}`;
  } catch {
    return null;
  }
}

/** Turns a negative code from the addon into the error the public API throws. */
export function lockFailure(code: number, syscall: string, lockPath: string): Error {
  const name = binding.errorName(code) ?? `EUNKNOWN(${code})`;
  const error = systemError(name, binding.errorErrno(code), syscall, lockPath);
  if (syscall === 'flock' && UNSUPPORTED.has(name)) {
    return new LockUnsupportedError(lockPath, filesystemType(lockPath), error);
  }
  return error;
}
