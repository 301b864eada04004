/** Exit status of a usage error (sysexits EX_USAGE, as util-linux flock(1)). */
export const EXIT_USAGE = 64;

/** A command line that cannot be understood: one line on stderr, a hint, exit 64. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help the hint points to, e.g. "run". */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** One option in util-linux's style: `-w 5`, `-w5`, `--wait 5`, `--wait=5`, clustered flags `-sn`. */
export interface OptionSpec<Name extends string = string> {
  readonly name: Name;
  /** Short spellings (single letters), e.g. ['x', 'e']. */
  readonly short?: readonly string[];
  /** Long spellings without the dashes; a unique prefix is accepted, as getopt_long does. */
  readonly long: readonly string[];
  /** Takes a value (its placeholder in messages); absent for a flag. */
  readonly value?: string;
}

export interface ParsedOption<Name extends string> {
  readonly name: Name;
  /** The value, or null for a flag. */
  readonly value: string | null;
  /** How it was written (`-w`, `--timeout`), for messages. */
  readonly spelled: string;
}

export interface ParsedArgs<Name extends string> {
  /** In command-line order, so that a later `-s`/`-x` overrides an earlier one. */
  readonly options: ParsedOption<Name>[];
  /** Everything from the first operand on, untouched: options end there, as in flock(1). */
  readonly operands: string[];
}

function findLong<Name extends string>(word: string, specs: readonly OptionSpec<Name>[], command?: string): { spec: OptionSpec<Name>; long: string } {
  const exact = specs.find((s) => s.long.includes(word));
  if (exact !== undefined) return { spec: exact, long: word };
  const matches: { spec: OptionSpec<Name>; long: string }[] = [];
  for (const spec of specs) for (const long of spec.long) if (long.startsWith(word)) matches.push({ spec, long });
  if (matches.length === 0) throw new UsageError(`unrecognized option '--${word}'`, command);
  // Two spellings of one option (--nonblock, --nonblocking) are not an ambiguity.
  if (matches.some((m) => m.spec !== matches[0].spec)) {
    throw new UsageError(`option '--${word}' is ambiguous; possibilities: ${matches.map((m) => `'--${m.long}'`).join(' ')}`, command);
  }
  return matches[0];
}

/**
 * Parses options up to the first operand (getopt with a leading '+'): `run f ls -la`
 * leaves `-la` to `ls`. `--` ends the options; a lone `-` is an operand.
 * Throws UsageError with getopt's wording for unknown options and missing values.
 */
export function parseOptions<Name extends string>(argv: readonly string[], specs: readonly OptionSpec<Name>[], command?: string): ParsedArgs<Name> {
  const options: ParsedOption<Name>[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const word = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const { spec, long } = findLong(word, specs, command);
      const spelled = `--${long}`;
      if (spec.value === undefined) {
        if (eq !== -1) throw new UsageError(`option '${spelled}' doesn't allow an argument`, command);
        options.push({ name: spec.name, value: null, spelled });
      } else if (eq !== -1) {
        options.push({ name: spec.name, value: arg.slice(eq + 1), spelled });
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`option '${spelled}' requires an argument`, command);
        options.push({ name: spec.name, value: argv[++i], spelled });
      }
      continue;
    }
    // A cluster of short options: -sn, -w5, -sw 5.
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j];
      const spec = specs.find((s) => s.short?.includes(letter));
      if (spec === undefined) throw new UsageError(`invalid option -- '${letter}'`, command);
      const spelled = `-${letter}`;
      if (spec.value === undefined) {
        options.push({ name: spec.name, value: null, spelled });
        continue;
      }
      if (j + 1 < arg.length) options.push({ name: spec.name, value: arg.slice(j + 1), spelled });
      else if (i + 1 < argv.length) options.push({ name: spec.name, value: argv[++i], spelled });
      else throw new UsageError(`option requires an argument -- '${letter}'`, command);
      break;
    }
  }
  return { options, operands: argv.slice(i) };
}
