import { parseArgs, type ParseArgsConfig } from 'node:util';

/** What the simulators' command lines share: a usage error ends the process with status 2 and the tool's name. */
export function cliTool(name: string) {
  const fail = (msg: string): never => {
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(2);
  };
  return {
    fail,
    /** parseArgs, strict, with a bad flag as a usage error rather than a stack trace. */
    options<const O extends NonNullable<ParseArgsConfig["options"]>>(options: O) {
      try {
        return parseArgs({ options, strict: true }).values;
      } catch (err) {
        return fail((err as Error).message);
      }
    },
    intOption(flag: string, raw: string, min: number, max: number): number {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) fail(`--${flag} must be an integer in ${min}..${max}`);
      return n;
    },
  };
}
