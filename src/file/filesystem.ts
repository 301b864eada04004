import * as fs from 'node:fs';
import * as path from 'node:path';

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

const NETWORK = new Set(['nfs', 'cifs', 'smb2', 'smb', 'v9fs (9p)']);

/**
 * The name of the network filesystem a statfs type number stands for, or null for a
 * local one: there a flock lock is the server's (other hosts' holders are invisible from
 * here, and a dead host's lock can outlive it), which inspect and status point out.
 */
export function networkFilesystemOf(type: number): string | null {
  const name = FILESYSTEMS[type >>> 0];
  return name !== undefined && NETWORK.has(name) ? name : null;
}

/** The network filesystem holding `file`, or null when it is local or the OS does not tell. */
export function networkFilesystem(file: string): string | null {
  try {
    return networkFilesystemOf(fs.statfsSync(path.dirname(file)).type);
  } catch {
    return null;
  }
}
