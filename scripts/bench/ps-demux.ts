/**
 * PS demux throughput: a 1080p H.264 clip (4 Mbit/s, 1 s GOP) muxed into GB/T 28181 packs and cut
 * into 1,400-byte RTP payloads, pushed through PsDemuxer as the RTP receiver hands them on, for a
 * few seconds. Part of `npm run bench:gb28181` (measurePsDemux); also runs alone:
 * `node --import tsx scripts/bench/ps-demux.ts`, its JSON object last on stdout.
 */
import { performance } from 'node:perf_hooks';
import { PsDemuxer } from '../../gateway/src/gb28181/media/ps-demux.js';
import { psPack } from '../../gateway/src/gb28181/media/ps-mux.js';
import { ensureClip, type ClipKind } from '../sim/clips.js';
import { machineConditions, runIfMain } from './harness.js';

const CLIP: ClipKind = 'h264-1080p-1s';
const PAYLOAD_BYTES = 1_400;
const TARGET_MB_PER_S = 200;

export interface PsDemuxResult {
  ps_demux_mb_per_s: number;
  target_mb_per_s: number;
  met: boolean;
  conditions: { clip: ClipKind; payload_bytes: number; stream_mb: number; frames_per_round: number; rounds: number; seconds: number; units: number; node: string; cpu: string | undefined; cores: number; load_avg_1m: number };
}

export async function measurePsDemux(opts: { seconds?: number } = {}): Promise<PsDemuxResult> {
  const seconds = opts.seconds ?? 3;
  const clip = await ensureClip(CLIP);
  const start = Buffer.from([0, 0, 0, 1]);
  const ps = Buffer.concat(clip.frames.map((f, i) => psPack({ codec: clip.codec, pts90k: i * 3600, key: f.key, data: Buffer.concat(f.nalUnits.flatMap((n) => [start, n])) })));
  const payloads: Buffer[] = [];
  for (let at = 0; at < ps.length; at += PAYLOAD_BYTES) payloads.push(ps.subarray(at, at + PAYLOAD_BYTES));
  let units = 0;
  const demuxer = new PsDemuxer(() => void units++);
  const round = () => {
    for (const p of payloads) demuxer.push(p);
  };
  // Warm the JIT before timing.
  for (let i = 0; i < 5; i++) round();
  units = 0;
  let rounds = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < seconds * 1000) {
    round();
    rounds++;
    elapsed = performance.now() - t0;
  }
  const mb = (ps.length * rounds) / 1e6;
  const rate = Math.round((mb / (elapsed / 1000)) * 10) / 10;
  if (units < rounds * clip.frames.length - 1) throw new Error(`only ${units} of ${rounds * clip.frames.length} frames came out`);
  return {
    ps_demux_mb_per_s: rate,
    target_mb_per_s: TARGET_MB_PER_S,
    met: rate >= TARGET_MB_PER_S,
    conditions: {
      clip: CLIP,
      payload_bytes: PAYLOAD_BYTES,
      stream_mb: Math.round((ps.length / 1e6) * 100) / 100,
      frames_per_round: clip.frames.length,
      rounds,
      seconds: Math.round(elapsed) / 1000,
      units,
      ...machineConditions(),
    },
  };
}

runIfMain(import.meta.url, measurePsDemux);
