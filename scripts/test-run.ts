/**
 * `npm test`'s runner: tap with its TAP output passed through as it comes, then, last, every failed
 * assertion again with the subtests it sits in and its diagnostics. A CI log is often read from its
 * end only, where a failure deep in 8,000 assertions would otherwise be one line of totals.
 * Arguments go to tap unchanged; the exit code is tap's.
 *
 *   node --import tsx scripts/test-run.ts [tap args...]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Lines of diagnostics kept per failure: the YAML block tap writes under a `not ok`. */
const MAX_DIAG_LINES = 40;
/** Failures repeated at the end; a run with more has a bigger problem than the list shows. */
const MAX_FAILURES = 30;

interface Failure {
  path: string[];
  line: string;
  diag: string[];
}

const child = spawn('tap', ['--reporter=tap', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
child.on('error', (err) => {
  process.stderr.write(`cannot run tap: ${err.message}\n`);
  process.exit(1);
});

const failures: Failure[] = [];
/** The `# Subtest:` names open at each indentation depth. */
const open: string[] = [];
let collecting: Failure | null = null;
let collectingIndent = '';

const lines = createInterface({ input: child.stdout });
lines.on('line', (line) => {
  process.stdout.write(line + '\n');
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

// 'close' comes after the child's stdout ended, so every line has been read by then.
const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
if (failures.length) {
  // A failed assertion also fails every subtest above it, each reported after it: the innermost ones say what broke.
  const innermost = failures.filter((f, i) => !failures.slice(0, i).some((g) => g.path.length > f.path.length && f.path.every((p, k) => g.path[k] === p)));
  process.stdout.write(`\n# ===== ${innermost.length} failure(s), again =====\n`);
  for (const f of innermost) {
    process.stdout.write(`\n# ${[...f.path, f.line].join('\n#   > ')}\n`);
    for (const d of f.diag) process.stdout.write(`#     ${d}\n`);
  }
}
process.exit(code);
