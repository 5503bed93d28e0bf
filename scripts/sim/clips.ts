/**
 * Pre-encoded test clips for the camera simulator. Each clip is encoded once with ffmpeg into a raw
 * Annex-B file under the cache directory and parsed into access units, so simulated cameras only
 * copy bytes and never encode.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ClipKind = 'h264-720p-1s' | 'h264-720p-2s' | 'h264-1080p-1s' | 'h264-1080p-2s' | 'h265-720p-1s' | 'h264-360p-1s' | 'h264-1080p-8m-4s';
export const CLIP_KINDS: readonly ClipKind[] = ['h264-720p-1s', 'h264-720p-2s', 'h264-1080p-1s', 'h264-1080p-2s', 'h265-720p-1s', 'h264-360p-1s', 'h264-1080p-8m-4s'];

export interface ClipFrame {
  /** NAL units without start codes, AUDs removed. */
  nalUnits: Buffer[];
  key: boolean;
}

export interface Clip {
  kind: ClipKind;
  codec: 'h264' | 'h265';
  width: number;
  height: number;
  fps: 25;
  gopFrames: number;
  frames: ClipFrame[];
  /** raw Annex-B file path (for RTMP push) */
  file: string;
  /** sprop params for SDP */
  parameterSets: Buffer[];
}

interface ClipSpec {
  codec: 'h264' | 'h265';
  width: number;
  height: number;
  gopFrames: number;
  /** Target bitrate in kbit/s. */
  kbps: number;
  /** Film grain over the test pattern, which alone compresses far below a high bit rate. */
  noise?: boolean;
}

const SPECS: Record<ClipKind, ClipSpec> = {
  'h264-720p-1s': { codec: 'h264', width: 1280, height: 720, gopFrames: 25, kbps: 2000 },
  'h264-720p-2s': { codec: 'h264', width: 1280, height: 720, gopFrames: 50, kbps: 2000 },
  'h264-1080p-1s': { codec: 'h264', width: 1920, height: 1080, gopFrames: 25, kbps: 4000 },
  'h264-1080p-2s': { codec: 'h264', width: 1920, height: 1080, gopFrames: 50, kbps: 4000 },
  'h265-720p-1s': { codec: 'h265', width: 1280, height: 720, gopFrames: 25, kbps: 1500 },
  // A camera's sub-stream, as small wall tiles play it.
  'h264-360p-1s': { codec: 'h264', width: 640, height: 360, gopFrames: 25, kbps: 512 },
  // A heavy main stream for the memory benchmark: 8 Mbit/s, one keyframe every 4 s (the whole clip).
  'h264-1080p-8m-4s': { codec: 'h264', width: 1920, height: 1080, gopFrames: 100, kbps: 8000, noise: true },
};

const FPS = 25;
/** 4 s for both GOP lengths: long enough for several keyframes, short enough to encode in seconds. */
const CLIP_FRAMES = 4 * FPS;
const ENCODE_TIMEOUT_MS = 120_000;
/** Bumped whenever the encoder settings change, so stale cache files are not reused. */
const CACHE_VERSION = 1;

const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../../.cache/clips', import.meta.url));

const memo = new Map<string, Promise<Clip>>();

export function ensureClip(kind: ClipKind, cacheDir: string = DEFAULT_CACHE_DIR): Promise<Clip> {
  const spec = SPECS[kind];
  if (!spec) return Promise.reject(new Error(`unknown clip kind ${String(kind)}`));
  const key = `${cacheDir}\0${kind}`;
  let p = memo.get(key);
  if (!p) {
    p = loadOrEncode(kind, spec, cacheDir);
    memo.set(key, p);
    // A failed encode must not poison the cache: the next caller tries again.
    p.catch(() => memo.delete(key));
  }
  return p;
}

async function loadOrEncode(kind: ClipKind, spec: ClipSpec, cacheDir: string): Promise<Clip> {
  const file = join(cacheDir, `${kind}.v${CACHE_VERSION}.${spec.codec === 'h264' ? 'h264' : 'hevc'}`);
  if (await exists(file)) {
    try {
      return parseClip(kind, spec, file, await readFile(file));
    } catch {
      // A truncated or foreign file (e.g. from an interrupted manual copy): encode it afresh.
      await rm(file, { force: true });
    }
  }
  await mkdir(cacheDir, { recursive: true });
  // Unique temp name: two processes (tap runs test files in parallel) may encode the same clip.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await runFfmpeg(encodeArgs(spec, tmp));
    const clip = parseClip(kind, spec, file, await readFile(tmp));
    await rename(tmp, file);
    return clip;
  } finally {
    await rm(tmp, { force: true });
  }
}

function encodeArgs(spec: ClipSpec, out: string): string[] {
  const { width, height, gopFrames: g, kbps } = spec;
  const rate = [`-b:v`, `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps / 2}k`];
  const codecArgs =
    spec.codec === 'h264'
      ? ['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'main', '-bf', '0',
         '-g', String(g), '-keyint_min', String(g), '-sc_threshold', '0', ...rate,
         '-x264-params', 'repeat-headers=1:aud=1', '-pix_fmt', 'yuv420p', '-f', 'h264']
      : ['-c:v', 'libx265', '-preset', 'ultrafast', ...rate,
         '-x265-params', `keyint=${g}:min-keyint=${g}:scenecut=0:bframes=0:repeat-headers=1:aud=1:log-level=error`,
         '-pix_fmt', 'yuv420p', '-f', 'hevc'];
  return ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${FPS}${spec.noise ? ',noise=alls=24:allf=t' : ''}`,
    '-frames:v', String(CLIP_FRAMES), ...codecArgs, out];
}

function runFfmpeg(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), ENCODE_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(guard);
      reject(new Error(`cannot run ffmpeg: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (code === 0) resolve();
      else reject(new Error(`ffmpeg encode failed (${signal ?? `exit ${String(code)}`}): ${stderr.trim()}`));
    });
  });
}

function parseClip(kind: ClipKind, spec: ClipSpec, file: string, data: Buffer): Clip {
  const h264 = spec.codec === 'h264';
  const typeOf = h264 ? (n: Buffer) => n[0]! & 0x1f : (n: Buffer) => (n[0]! >> 1) & 0x3f;
  const isAud = (t: number) => (h264 ? t === 9 : t === 35);
  const isKey = (t: number) => (h264 ? t === 5 : t >= 16 && t <= 21);
  const isParamSet = (t: number) => (h264 ? t === 7 || t === 8 : t >= 32 && t <= 34);

  const frames: ClipFrame[] = [];
  let current: ClipFrame | null = null;
  for (const nal of splitAnnexB(data)) {
    const type = typeOf(nal);
    if (isAud(type)) {
      current = { nalUnits: [], key: false };
      frames.push(current);
      continue;
    }
    if (!current) throw new Error(`${file}: NAL unit before the first access unit delimiter`);
    current.nalUnits.push(nal);
    if (isKey(type)) current.key = true;
  }
  if (frames.length !== CLIP_FRAMES) throw new Error(`${file}: ${frames.length} frames, expected ${CLIP_FRAMES}`);
  const first = frames[0]!;
  if (!first.key) throw new Error(`${file}: the first frame is not a keyframe`);
  const parameterSets = first.nalUnits.filter((n) => isParamSet(typeOf(n)));
  if (parameterSets.length < (h264 ? 2 : 3)) throw new Error(`${file}: parameter sets missing from the first keyframe`);
  return { kind, codec: spec.codec, width: spec.width, height: spec.height, fps: FPS, gopFrames: spec.gopFrames, frames, file, parameterSets };
}

const annexB = new WeakMap<Clip, Buffer[]>();
const START_CODE = Buffer.from([0, 0, 0, 1]);

/** The frames of a clip as Annex-B access units (what a camera's encoder writes), built once per clip. */
export function annexBFrames(clip: Clip): Buffer[] {
  let frames = annexB.get(clip);
  if (!frames) {
    frames = clip.frames.map((f) => Buffer.concat(f.nalUnits.flatMap((n) => [START_CODE, n])));
    annexB.set(clip, frames);
  }
  return frames;
}

/** NAL units of an Annex-B byte stream, as views into `data`. */
function splitAnnexB(data: Buffer): Buffer[] {
  const starts: { code: number; payload: number }[] = [];
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      starts.push({ code: i, payload: i + 3 });
      i += 2;
    }
  }
  const out: Buffer[] = [];
  starts.forEach((s, k) => {
    let end = starts[k + 1]?.code ?? data.length;
    // The zero byte of a 4-byte start code (and any trailing_zero_8bits) belongs to no NAL unit.
    while (end > s.payload && data[end - 1] === 0) end--;
    if (end > s.payload) out.push(data.subarray(s.payload, end));
  });
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
