import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SnapshotStats } from '../snapshots/service.js';
import type { StreamManager } from '../streams/manager.js';
import { FfmpegProcess } from '../streams/process/ffmpeg-process.js';

/**
 * Prometheus metrics. Labels never carry camera ids, URLs or user names: cardinality stays flat
 * at 70,000 cameras and nothing here is worth stealing.
 */
/** What the metrics need of the WebRTC output. */
export interface WebRtcStats {
  readonly peerCount: number;
  on(event: 'joined', listener: (timings: { firstKeyframe: number | null }) => void): unknown;
}

/** What the metrics need of the GB/T 28181 SIP service (gb28181/service.ts), when it runs. */
export interface GbMetricsSource {
  readonly registrations: number;
  readonly refusals: { unknown: number; password: number; disabled: number };
  readonly devicesOnline: number;
  readonly dropped: number;
}

/** What the metrics need of the JT/T 808 server (jt/service.ts), when it runs. */
export interface JtMetricsSource {
  readonly framesIn: number;
  readonly parseErrors: Readonly<Record<string, number>>;
  readonly terminalsOnline: number;
  readonly refusals: Readonly<Record<string, number>>;
  readonly connectionsRefused: number;
}

/** What the metrics need of the JT/T 1078 media server (jt/media/server.ts), when it runs. */
export interface JtMediaMetricsSource {
  readonly stats: { packets: number; bytes: number; unknownSim: number; unwanted: number; refused: number; failed: number; connectionsRefused: number; errors: Readonly<Record<string, number>> };
  readonly connections: number;
}

/** What the metrics need of the cluster node (cluster/node.ts), in cluster mode. */
export interface ClusterMetricsSource {
  readonly id: string;
  nodes(): readonly unknown[];
  readonly ownership: { held(): readonly unknown[] };
}

/** What the metrics need of the importers. */
export interface ImportStats {
  readonly running: number;
}

export function metricsRoutes(streams: StreamManager, webrtc: WebRtcStats, imports: ImportStats, snapshots: SnapshotStats, gb: GbMetricsSource | null = null, jt808: JtMetricsSource | null = null, jt1078: JtMediaMetricsSource | null = null, cluster: ClusterMetricsSource | null = null) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wallgate_' });
  if (cluster) {
    new Gauge({
      name: 'wallgate_cluster_nodes',
      help: 'Nodes of the cluster alive now (a heartbeat within three heartbeats), this one included, as this node sees them.',
      registers: [registry],
      collect() {
        this.set(cluster.nodes().length);
      },
    });
    new Gauge({
      name: 'wallgate_cluster_leases_held',
      help: 'Cameras this node holds the lease of (pulls for the cluster).',
      registers: [registry],
      collect() {
        this.set(cluster.ownership.held().length);
      },
    });
  }
  new Gauge({
    name: 'wallgate_stream_sessions',
    help: 'Camera pulls by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      for (const [state, n] of Object.entries(streams.stats().sessions)) if (state !== 'closed') this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'wallgate_imports_running',
    help: 'Source and vehicle imports under way (registry.importMaxConcurrent bounds them).',
    registers: [registry],
    collect() {
      this.set(imports.running);
    },
  });
  new Gauge({
    name: 'wallgate_stream_readers',
    help: 'Viewers over all sessions.',
    registers: [registry],
    collect() {
      this.set(streams.stats().readers);
    },
  });
  new Gauge({
    name: 'wallgate_stream_transcodes',
    help: 'H.265 pulls being transcoded.',
    registers: [registry],
    collect() {
      this.set(streams.stats().transcodes);
    },
  });
  new Gauge({
    name: 'wallgate_gop_cache_bytes',
    help: 'Bytes the GOP caches hold over all sessions (streams.gopCache.maxBytesTotal).',
    registers: [registry],
    collect() {
      this.set(streams.stats().gopCacheBytes);
    },
  });
  new Gauge({
    name: 'wallgate_ffmpeg_processes',
    help: 'ffmpeg children running.',
    registers: [registry],
    collect() {
      this.set(FfmpegProcess.running().size);
    },
  });
  new Gauge({
    name: 'wallgate_webrtc_peers',
    help: 'WebRTC (WHEP) viewers.',
    registers: [registry],
    collect() {
      this.set(webrtc.peerCount);
    },
  });
  const joinSeconds = new Histogram({
    name: 'wallgate_webrtc_join_seconds',
    help: "From a WHEP offer to the viewer's first keyframe sent (a cold camera includes its start).",
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5],
    registers: [registry],
  });
  webrtc.on('joined', (t) => {
    if (t.firstKeyframe !== null) joinSeconds.observe(t.firstKeyframe / 1000);
  });
  // Totals kept by the engine, exposed as counters that catch up on each scrape.
  const totals = (name: string, help: string, read: () => number) => {
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = read();
        if (now > seen) this.inc(now - seen);
        seen = Math.max(seen, now);
      },
    });
  };
  /** The same for totals kept by a label's value (kind, reason). */
  const labelledTotals = (name: string, help: string, label: string, read: () => Readonly<Record<string, number>>) => {
    const seen: Record<string, number> = {};
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        for (const [value, n] of Object.entries(read())) {
          if (n > (seen[value] ?? 0)) this.inc({ [label]: value }, n - (seen[value] ?? 0));
          seen[value] = Math.max(seen[value] ?? 0, n);
        }
      },
    });
  };
  totals('wallgate_ffmpeg_restarts_total', 'Pull restarts after a camera dropped, stalled or failed to start.', () => streams.stats().restarts);
  totals('wallgate_stream_bytes_in_total', 'Bytes received from ffmpeg pulls.', () => streams.stats().bytesIn);
  totals('wallgate_stream_bytes_out_total', 'Bytes sent to viewers (HLS, FLV and WebRTC).', () => streams.stats().bytesOut);
  totals('wallgate_snapshot_decodes_total', 'Snapshot decodes (one ffmpeg each), successful or not.', () => snapshots.decodes);
  totals('wallgate_snapshot_cache_hits_total', 'Snapshots answered from the cache (streams.snapshots.cacheMs).', () => snapshots.cacheHits);
  totals('wallgate_snapshot_coalesced_total', 'Snapshot requests that shared a decode already running for the same picture.', () => snapshots.coalesced);
  if (gb) {
    totals('wallgate_gb28181_registrations_total', 'GB/T 28181 REGISTERs accepted (new registrations and refreshes).', () => gb.registrations);
    const seen = { unknown: 0, password: 0, disabled: 0 };
    new Counter({
      name: 'wallgate_gb28181_refusals_total',
      help: 'GB/T 28181 registrations refused, by reason: unknown (id not admitted), password (wrong digest), disabled.',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        const now = gb.refusals;
        for (const reason of ['unknown', 'password', 'disabled'] as const) {
          if (now[reason] > seen[reason]) this.inc({ reason }, now[reason] - seen[reason]);
          seen[reason] = Math.max(seen[reason], now[reason]);
        }
      },
    });
    totals('wallgate_gb28181_sip_dropped_total', 'SIP input dropped unread: unparsable or over gb28181.maxMessageBytes.', () => gb.dropped);
    new Gauge({
      name: 'wallgate_gb28181_devices_online',
      help: 'GB/T 28181 devices and platforms registered now.',
      registers: [registry],
      collect() {
        this.set(gb.devicesOnline);
      },
    });
  }
  if (jt808) {
    totals('wallgate_jt808_frames_total', 'JT/T 808 frames received from terminals (whole ones, checksum good).', () => jt808.framesIn);
    totals('wallgate_jt808_connections_refused_total', 'JT/T 808 connections closed at once for jt808.maxConnections or jt808.maxConnectionsPerIp.', () => jt808.connectionsRefused);
    const seen: Record<string, number> = {};
    new Counter({
      name: 'wallgate_jt808_parse_errors_total',
      help: 'JT/T 808 input refused, by kind: escape, checksum, truncated, length, oversize, header, value, garbage (bytes outside a frame), subpackage (a series never completed), backlog.',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        for (const [kind, n] of Object.entries(jt808.parseErrors)) {
          if (n > (seen[kind] ?? 0)) this.inc({ kind }, n - (seen[kind] ?? 0));
          seen[kind] = Math.max(seen[kind] ?? 0, n);
        }
      },
    });
    const refused: Record<string, number> = {};
    new Counter({
      name: 'wallgate_jt808_refusals_total',
      help: 'JT/T 808 terminals refused, by reason: unknown (SIM of no vehicle), auth (wrong auth code), terminal (terminal id not the vehicle\'s), plate (auto-registration refused its plate), registered (another terminal holds the vehicle\'s code), unauthenticated (data before authentication, once per connection).',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        for (const [reason, n] of Object.entries(jt808.refusals)) {
          if (n > (refused[reason] ?? 0)) this.inc({ reason }, n - (refused[reason] ?? 0));
          refused[reason] = Math.max(refused[reason] ?? 0, n);
        }
      },
    });
    new Gauge({
      name: 'wallgate_jt808_terminals_online',
      help: 'JT/T 808 terminals connected and authenticated now.',
      registers: [registry],
      collect() {
        this.set(jt808.terminalsOnline);
      },
    });
  }
  if (jt1078) {
    totals('wallgate_jt1078_packets_total', 'JT/T 1078 media packets received from known terminals.', () => jt1078.stats.packets);
    totals('wallgate_jt1078_bytes_total', 'Bytes received on the JT/T 1078 media port (TCP and UDP).', () => jt1078.stats.bytes);
    totals('wallgate_jt1078_unknown_sim_total', 'JT/T 1078 packets from a SIM no vehicle has (dropped; a TCP connection sending them is closed).', () => jt1078.stats.unknownSim);
    totals('wallgate_jt1078_connections_refused_total', 'JT/T 1078 media connections refused over the caps, or closed for sending no packet of a known vehicle within 5 s.', () => jt1078.stats.connectionsRefused);
    labelledTotals(
      'wallgate_jt1078_dropped_total',
      "JT/T 1078 packets of known vehicles dropped, by reason: unwanted (a channel nobody asked for), refused (not from the channel's pinned source), failed (handling them threw).",
      'reason',
      () => ({ unwanted: jt1078.stats.unwanted, refused: jt1078.stats.refused, failed: jt1078.stats.failed }),
    );
    labelledTotals(
      'wallgate_jt1078_parse_errors_total',
      'JT/T 1078 media input refused, by kind: resync (bytes skipped to the next packet), oversize (a body over jt1078.maxPacketBytes), truncated (a datagram torn short).',
      'kind',
      () => jt1078.stats.errors,
    );
    new Gauge({
      name: 'wallgate_jt1078_media_connections',
      help: 'TCP media connections from terminals open now.',
      registers: [registry],
      collect() {
        this.set(jt1078.connections);
      },
    });
  }
  const decodeSeconds = new Histogram({
    name: 'wallgate_snapshot_decode_seconds',
    help: 'From a decoder slot taken to its JPEG (or failure): one keyframe decoded by one ffmpeg.',
    buckets: [0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2],
    registers: [registry],
  });
  snapshots.on('decoded', (ms) => decodeSeconds.observe(ms / 1000));
  const startSeconds = new Histogram({
    name: 'wallgate_stream_start_seconds',
    help: 'From the start of a pull attempt (address check, spawn) to its first video frame.',
    buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13],
    registers: [registry],
  });
  streams.on('started', (e) => startSeconds.observe(e.ms / 1000));

  return async (app: FastifyInstance) => {
    app.get('/metrics', { schema: { response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: Type.String() } } } } } }, async (_req, reply) => {
      // Every series says which node it comes from, so one Prometheus scraping every node tells them apart and sums them.
      // Set at each scrape: the node's id may name its port, known only once it listens.
      if (cluster) registry.setDefaultLabels({ node: cluster.id });
      return reply.header('content-type', registry.contentType).send(await registry.metrics());
    });
  };
}
