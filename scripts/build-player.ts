/**
 * Bundles the browser pages (player/src/pages/*.ts) with esbuild into dist/player: one HTML page per
 * entry, its script and stylesheet under assets/ with a content hash, and the chunks they share.
 * `--watch` rebuilds on change.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import * as esbuild from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const PAGES = join(ROOT, 'player/src/pages');
const DEFAULT_OUT = join(ROOT, 'dist/player');

/** index.html is the sign-in page: it sends each user on to their own page. */
const HTML_NAMES: Record<string, string[]> = { login: ['index.html', 'login.html'] };

const page = (title: string, script: string, css: string | undefined) => `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${css ? `<link rel="stylesheet" href="/${css}">\n` : ''}<script type="module" src="/${script}"></script>
</head>
<body></body>
</html>
`;

/** Builds into `outDir` (dist/player by default; tests build their own copy so parallel runs never share one). */
export async function buildPlayer(opts: { minify?: boolean; outDir?: string } = {}) {
  const out = opts.outDir ?? DEFAULT_OUT;
  const entries = readdirSync(PAGES).filter((f) => f.endsWith('.ts')).map((f) => join(PAGES, f));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const result = await esbuild.build({
    entryPoints: entries,
    bundle: true,
    splitting: true,
    format: 'esm',
    target: ['chrome100', 'firefox100', 'safari15'],
    outdir: join(out, 'assets'),
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    assetNames: '[name]-[hash]',
    loader: { '.png': 'file', '.svg': 'file' },
    minify: opts.minify ?? true,
    sourcemap: 'linked',
    metafile: true,
    absWorkingDir: ROOT,
    legalComments: 'linked',
    tsconfig: join(ROOT, 'player/tsconfig.json'),
    logLevel: 'warning',
  });
  for (const [file, meta] of Object.entries(result.metafile.outputs)) {
    // Dynamically imported libraries (hls.js, mpegts.js) are entry points too, but not pages.
    if (!meta.entryPoint?.startsWith('player/src/pages/') || !file.endsWith('.js')) continue;
    const name = basename(meta.entryPoint, '.ts');
    const script = relative(out, resolve(ROOT, file));
    const css = meta.cssBundle ? relative(out, resolve(ROOT, meta.cssBundle)) : undefined;
    for (const html of HTML_NAMES[name] ?? [`${name}.html`]) writeFileSync(join(out, html), page('wallgate', script, css));
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const result = await buildPlayer({ minify: !process.argv.includes('--dev') });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`player built in ${Date.now() - started} ms: ${Object.keys(result.metafile.outputs).length} files, ${(bytes / 1024).toFixed(0)} KiB in ${relative(process.cwd(), DEFAULT_OUT)}`);
}
