/**
 * A simulated RTMP-push camera: ffmpeg paces a pre-encoded clip in real time into an RTMP ingest,
 * copying the bitstream so the push costs no encoding.
 *
 * The clip is looped by writing the Annex-B file to ffmpeg's stdin over and over: ffmpeg 5.1 cannot
 * `-stream_loop` a raw H.264 input ("Seek to start failed" after one pass). Every pass starts with
 * an IDR and its SPS/PPS and timestamps come from -framerate, so the joins are seamless.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Clip } from './clips.js';

export interface RtmpPush {
  close(): Promise<void>;
  /** The exit code, or null when ffmpeg ended by a signal. */
  readonly exited: Promise<number | null>;
}

const KILL_AFTER_MS = 2000;

/** `quiet` keeps ffmpeg's errors off stderr, for a push that is meant to be refused. */
export function pushRtmp(url: string, clip: Clip, opts: { quiet?: boolean } = {}): RtmpPush {
  if (clip.codec !== 'h264') {
    // ffmpeg 5.1's FLV muxer knows H.264 but not HEVC (no enhanced RTMP yet).
    throw new Error(`cannot push ${clip.kind} over RTMP: FLV in ffmpeg 5.1 carries H.264 only`);
  }
  const child = spawn(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-re', '-fflags', '+genpts',
     '-f', 'h264', '-framerate', String(clip.fps), '-i', 'pipe:0', '-c', 'copy', '-f', 'flv', url],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let closing: Promise<void> | null = null;
  let done = false;
  // ffmpeg's errors help when a push fails; the ones a deliberate close provokes are noise.
  child.stderr.on('data', (d: Buffer) => {
    if (!closing && !opts.quiet) process.stderr.write(d);
  });
  // EPIPE once ffmpeg is gone: the exit is reported through `exited`.
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      done = true;
      resolve(code);
    });
    // A spawn failure (no ffmpeg) emits 'error' and possibly no 'close'.
    child.on('error', () => {
      done = true;
      resolve(child.exitCode);
    });
  });

  void (async () => {
    const data = await readFile(clip.file);
    // -re makes ffmpeg read at the frame rate, so backpressure paces these writes.
    while (!done && !closing) {
      if (child.stdin.write(data)) continue;
      await new Promise<void>((resolve) => {
        const go = () => {
          child.stdin.off('drain', go);
          child.stdin.off('close', go);
          resolve();
        };
        child.stdin.on('drain', go);
        child.stdin.on('close', go);
      });
    }
  })().catch(() => child.kill('SIGKILL'));

  return {
    exited,
    close() {
      closing ??= (async () => {
        if (done || child.pid === undefined) return;
        child.kill('SIGTERM');
        const guard = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
        await exited;
        clearTimeout(guard);
      })();
      return closing;
    },
  };
}
