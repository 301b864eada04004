import { createHash } from 'node:crypto';

/**
 * The advisory-lock key of `key` within `namespace`: the first 8 bytes of
 * SHA-256 over both (length-prefixed, so no two pairs share an input), as a
 * signed 64-bit integer, which is what pg_advisory_lock(bigint) takes. A
 * collision can only make two keys wait for each other, never give two holders.
 */
export function advisoryKey(namespace: string, key: string): bigint {
  const ns = Buffer.from(namespace, 'utf8');
  const digest = createHash('sha256').update(`${ns.length}:`).update(ns).update(key, 'utf8').digest();
  return digest.readBigInt64BE(0);
}
