#!/usr/bin/env node
// node-gyp-build runs this only when no prebuilt binary loads (or a source build was
// asked for), right before it compiles. Without a toolchain the compile could only fail
// with a compiler error; fail instead with the paths that were tried and what to do.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

if (process.platform === 'win32' || process.env.npm_config_build_from_source === 'true') process.exit(0);

function onPath(command) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const missing = [];
if (!['cc', 'gcc', 'clang'].some(onPath)) missing.push('a C compiler (cc)');
if (!onPath('make')) missing.push('make');
if (!['python3', 'python'].some(onPath)) missing.push('Python 3');
if (missing.length === 0) process.exit(0); // node-gyp-build compiles from source next

let tried = '';
try {
  require('../dist/cjs/file/binding.js').loadBinding();
} catch (error) {
  tried = error.message;
}
console.error(
  `session-flock: ${tried || `no prebuilt binary for ${process.platform}-${process.arch}.`}\n` +
    `A build from source was not attempted: ${missing.join(', ')} not found on PATH.\n` +
    'See "Install" in the session-flock README for the supported platforms.',
);
process.exit(1);
