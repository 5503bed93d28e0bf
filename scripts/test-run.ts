/**
 * `npm test`'s runner. Two tap runs side by side: the browser tests (test/e2e) one at a time, and
 * everything else two at a time. Most of the suite waits on real time (video playing, timeouts,
 * lingers) rather than on the CPU, so three files at once fit two cores; but two headless browsers
 * decoding video at once starve each other, so the e2e files never overlap.
 *
 * The TAP output of the main run passes through as it comes and the browser run's follows it; then,
 * last, every failed assertion again with the subtests it sits in and its diagnostics, since a CI
 * log is often read from its end only, where a failure deep in 8,000 assertions would otherwise be
 * one line of totals. The exit code is the worse of the two runs'.
 *
 *   node --import tsx scripts/test-run.ts            the whole suite
 *   node --import tsx scripts/test-run.ts [tap args] one tap run with these arguments (e.g. files)
 */
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Lines of diagnostics kept per failure: the YAML block tap writes under a `not ok`. */
const MAX_DIAG_LINES = 40;
/** Failures repeated at the end; a run with more has a bigger problem than the list shows. */
const MAX_FAILURES = 30;
const BROWSER_TESTS = 'test/e2e';
/** The project's tap, also when this runs outside npm (which puts node_modules/.bin on the PATH). */
const TAP = join(import.meta.dirname, '..', 'node_modules', '.bin', 'tap');

interface Failure {
  path: string[];
  line: string;
  diag: string[];
}

interface TapRun {
  code: number;
  failures: Failure[];
  /** The run's output, when it was kept to be printed after the other's. */
  held: string[];
  /** How the tap process ended, in words. */
  exit: string;
  /** Its last lines of output, for a run that failed without a failed assertion. */
  tail: string[];
}

/** Runs tap with `args`, printing its output as it comes (or holding it), and collects the failed assertions. */
function runTap(args: string[], hold: boolean): Promise<TapRun> {
  const child = spawn(TAP, ['--reporter=tap', ...args], { stdio: ['inherit', 'pipe', 'inherit'] });
  const failures: Failure[] = [];
  const held: string[] = [];
  const tail: string[] = [];
  /** The `# Subtest:` names open at each indentation depth. */
  const open: string[] = [];
  let collecting: Failure | null = null;
  let collectingIndent = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (hold) held.push(line);
    else process.stdout.write(line + '\n');
    tail.push(line);
    if (tail.length > 15) tail.shift();
    const indent = /^\s*/.exec(line)![0];
    const depth = indent.length / 4;
    if (collecting) {
      if (line.startsWith(collectingIndent) && collecting.diag.length < MAX_DIAG_LINES) {
        collecting.diag.push(line.slice(collectingIndent.length));
        if (line.trim() === '...') collecting = null;
        return;
      }
      collecting = null;
    }
    const subtest = /^\s*# Subtest: (.*)$/.exec(line);
    if (subtest) {
      open.length = depth;
      open[depth] = subtest[1]!;
      return;
    }
    if (/^\s*not ok \d+/.test(line)) {
      open.length = Math.min(open.length, depth);
      const failure: Failure = { path: open.slice(0, depth), line: line.trim(), diag: [] };
      if (failures.length < MAX_FAILURES) failures.push(failure);
      collecting = failure;
      collectingIndent = indent + '  ';
    }
  });
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`cannot run tap: ${err.message}\n`);
      resolve({ code: 1, failures, held, exit: `an error (${err.message})`, tail });
    });
    // 'close' comes after the child's stdout ended, so every line has been read by then.
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), failures, held, exit: signal ? `signal ${signal}` : `exit code ${code}`, tail }));
  });
}

/** The test files under `dir`, in order, leaving out those under `except`. */
function testFiles(dir: string, except?: string): string[] {
  const files = readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === except ? [] : testFiles(path, except);
    return e.name.endsWith('.test.ts') ? [path] : [];
  });
  return files.sort();
}

/**
 * The cluster tests' PostgreSQL and Redis: those named in the environment (CI starts its own), else
 * a throwaway pair started here when the machine has the programs, else none, and those tests skip.
 */
async function clusterServices(): Promise<(() => void) | null> {
  if (process.env.WALLGATE_TEST_PG_URL && process.env.WALLGATE_TEST_REDIS_URL) return null;
  const script = join(import.meta.dirname, 'cluster-services.sh');
  if (spawnSync('bash', [script, 'check']).status !== 0) {
    process.stdout.write('# cluster tests will be skipped: PostgreSQL and Redis are not installed (Debian: postgresql, redis-server)\n');
    return null;
  }
  const dir = join(tmpdir(), `wallgate-services-${process.pid}`);
  const started = spawnSync('bash', [script, 'start', dir], { encoding: 'utf8' });
  if (started.status !== 0) {
    process.stdout.write(`# cluster tests will be skipped: PostgreSQL and Redis did not start: ${started.stderr.trim().split('\n').slice(-3).join(' | ')}\n`);
    return null;
  }
  for (const m of started.stdout.matchAll(/^export (WALLGATE_TEST_\w+)=(.*)$/gm)) process.env[m[1]!] = m[2]!;
  return () => void spawnSync('bash', [script, 'stop', dir]);
}

/**
 * tap rebuilds its test class when the configured plugins differ from the ones it was built with, as
 * on a fresh install (this project leaves out @tapjs/typescript). Two runs starting at once would
 * both rebuild the same files, and one fails before running a test; so it is built once, here,
 * and a marker in node_modules records the plugin list it was built for.
 */
function buildTapOnce() {
  const root = join(import.meta.dirname, '..');
  const marker = join(root, 'node_modules', '.wallgate-tap-plugins');
  const plugins = JSON.stringify((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { tap?: { plugin?: string[] } }).tap?.plugin ?? []);
  if (existsSync(marker) && readFileSync(marker, 'utf8') === plugins) return;
  const built = spawnSync(TAP, ['build'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0) throw new Error(`tap build failed (${built.status ?? built.signal})`);
  writeFileSync(marker, plugins);
}

const args = process.argv.slice(2);
buildTapOnce();
const stopServices = await clusterServices();
const runs = args.length
  ? [await runTap(args, false)]
  : await Promise.all([runTap(['--jobs=2', ...testFiles('test', BROWSER_TESTS)], false), runTap(['--jobs=1', ...testFiles(BROWSER_TESTS)], true)]);
for (const run of runs) for (const line of run.held) process.stdout.write(line + '\n');

// A failed assertion also fails every subtest above it, each reported after it: the innermost ones say what broke.
const innermost = runs.flatMap(({ failures }) => failures.filter((f, i) => !failures.slice(0, i).some((g) => g.path.length > f.path.length && f.path.every((p, k) => g.path[k] === p))));
if (innermost.length) {
  process.stdout.write(`\n# ===== ${innermost.length} failure(s), again =====\n`);
  for (const f of innermost) {
    process.stdout.write(`\n# ${[...f.path, f.line].join('\n#   > ')}\n`);
    for (const d of f.diag) process.stdout.write(`#     ${d}\n`);
  }
}
for (const [i, run] of runs.entries()) {
  // A run that ends badly with no failed assertion (killed, or tap itself failing) would otherwise leave only an exit code.
  if (run.code !== 0 && run.failures.length === 0) process.stdout.write(`\n# the ${runs.length > 1 ? ['main', 'browser'][i] + ' ' : ''}tap run ended with ${run.exit} and no failed assertion; its last lines:\n${run.tail.map((l) => `#   ${l}`).join('\n')}\n`);
}
stopServices?.();
process.exit(Math.max(...runs.map((r) => r.code)));
