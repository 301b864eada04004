// counter.mjs through CommonJS require by package name.
const { withLock } = require('session-flock');
const { readFileSync, writeFileSync } = require('node:fs');

const [counterFile, iterations] = process.argv.slice(2);
(async () => {
  for (let i = 0; i < Number(iterations); i++) {
    await withLock(counterFile, async () => {
      const value = Number(readFileSync(counterFile, 'utf8'));
      await new Promise((resolve) => setImmediate(resolve));
      writeFileSync(counterFile, String(value + 1));
    }, { timeoutMs: 60_000, owner: 'counter-cjs', record: false });
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
