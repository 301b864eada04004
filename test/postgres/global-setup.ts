// Starts one throwaway PostgreSQL cluster for the whole run (or uses
// SESSION_FLOCK_TEST_PG_URL) and hands its URL to the PostgreSQL test files.
// Without a server, the suite is skipped with one line saying why, unless
// SESSION_FLOCK_REQUIRE_PG=1 (set by .ci/run) makes that a failure.
import type { TestProject } from 'vitest/node';
// @ts-expect-error plain ESM helper shared with the bench
import { provideServer, REQUIRE_VARIABLE } from '../../scripts/lib/pg-cluster.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string | null;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const server = await provideServer();
  if (server.url === null) {
    if (process.env[REQUIRE_VARIABLE] === '1') throw new Error(`PostgreSQL suite required (${REQUIRE_VARIABLE}=1) but no server: ${server.why}`);
    process.stdout.write(`PostgreSQL suite skipped: ${server.why} (or set SESSION_FLOCK_TEST_PG_URL)\n`);
  }
  project.provide('pgUrl', server.url);
  return () => server.stop();
}
