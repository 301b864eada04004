import type * as PgModule from 'pg';

export type Pg = typeof PgModule;

let pg: Pg | undefined;

/**
 * `pg` is an optional peer dependency: loaded on first use, never at import,
 * so `import 'session-flock/postgres'` works without it and the first use
 * says what to install.
 */
export function loadPg(): Pg {
  if (pg !== undefined) return pg;
  try {
    pg = require('pg') as Pg;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
    const missing = new Error(
      "session-flock/postgres needs the 'pg' package (PostgreSQL client), which is not installed: run `npm install pg`",
      { cause: error },
    ) as NodeJS.ErrnoException;
    missing.code = 'ERR_SESSION_FLOCK_PG_MISSING';
    throw missing;
  }
  return pg;
}
