// Issue 14: the gateway's call sites, typed test mocks and test setup must compile against
// the built `session-flock/session-write-lock` types under strict TypeScript with node16
// resolution. test/fixtures/swl-callsites/ holds those shapes; this runs `tsc --noEmit` on it.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const execFileP = promisify(execFile);
const repo = path.resolve(__dirname, '..');

describe('session-write-lock types', () => {
  it('the gateway shapes type-check (tsc --noEmit, strict, node16) against the built ESM and CJS types', { timeout: 120_000 }, async () => {
    const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const project = path.join(repo, 'test', 'fixtures', 'swl-callsites', 'tsconfig.json');
    const run = await execFileP(process.execPath, [tsc, '-p', project, '--listFiles'], { cwd: repo }).catch(
      (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '', failed: true }),
    );
    const errors = run.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
    expect(errors, run.stdout + run.stderr).toEqual([]);
    expect('failed' in run, run.stderr).toBe(false);
    // It resolved the package by name to the build, for both module systems, not to src/.
    const files = run.stdout.split('\n').map((line) => path.relative(repo, line.trim()));
    expect(files).toContain(path.join('dist', 'esm', 'adapters', 'session-write-lock.d.mts'));
    expect(files).toContain(path.join('dist', 'cjs', 'adapters', 'session-write-lock.d.ts'));
    expect(files.some((file) => file.startsWith('src'))).toBe(false);
  });
});
