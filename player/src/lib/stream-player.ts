/**
 * Plays one camera in one <video>: WebRTC (WHEP) first, then WS-FLV (mpegts.js), then HLS (hls.js),
 * each given a deadline for its first frame. When all fail, or a live picture stalls, it waits with a
 * countdown (backoff) and starts over with fresh stream URLs, for as long as it lives: a wall screen
 * recovers by itself when the camera or the gateway comes back.
 *
 * Everything a transport holds (peer connection, WHEP resource, MSE player, timers) is released by
 * one `destroy()`, so tiles that change every few seconds on a tour leave nothing behind.
 */
import type Hls from 'hls.js';
import type Mpegts from 'mpegts.js';
import { api, ApiError } from './api.js';
import { NODE_CHANGED, streamUrlsOnNode } from './nodes.js';
import { addStrings, t } from './i18n.js';
import { codeText, errorText, failureOf } from './errors.js';

addStrings({
  'player.stopped': ['the picture stopped', '画面中断'],
  'player.noPicture': ['{transport}: no picture within {seconds} s', '{transport}：{seconds} 秒内无画面'],
  'player.failed': ['{transport}: {message}', '{transport}：{message}'],
  'player.connectionFailed': ['the connection failed', '连接失败'],
  'player.streamEnded': ['the stream ended', '视频流已结束'],
  'player.noMse': ['this browser cannot play MSE video', '此浏览器不支持 MSE 播放'],
  'player.starting': ['Starting…', '正在连接…'],
  'player.paused': ['Paused', '已暂停'],
  'player.denied': ['No permission to view this camera', '无权查看该摄像机'],
  'player.offline': ['Offline: {reason}', '离线：{reason}'],
  'player.retrying': ['Retrying in {seconds} s ({reason})', '{seconds} 秒后重试（{reason}）'],
});

/** Seconds left until `at`, for a countdown. */
export const secondsUntil = (at: number) => Math.max(0, Math.ceil((at - Date.now()) / 1000));

/** What a player's state says to the viewer; `reason` overrides the player's own (the gateway knows better). */
export function stateText(state: PlayerState, reason?: string | null): string {
  switch (state.kind) {
    case 'starting':
      return t('player.starting');
    case 'live':
      return '';
    case 'paused':
      return t('player.paused');
    case 'denied':
      return t('player.denied');
    case 'offline':
      return t('player.offline', { reason: reason ?? state.reason });
    case 'retrying':
      return t('player.retrying', { seconds: secondsUntil(state.until), reason: reason ?? state.reason });
  }
}

export type Transport = 'webrtc' | 'flv' | 'hls';
export const TRANSPORTS: readonly Transport[] = ['webrtc', 'flv', 'hls'];

/** `transports=hls` or `transports=webrtc,hls` in a page's address: a screen whose network blocks some. */
export function transportsParam(params: URLSearchParams): Transport[] | undefined {
  const list = params.get('transports')?.split(',').filter((x): x is Transport => (TRANSPORTS as string[]).includes(x));
  return list?.length ? list : undefined;
}

export type PlayerState =
  | { kind: 'starting'; transport: Transport | null }
  | { kind: 'live'; transport: Transport }
  | { kind: 'retrying'; until: number; reason: string }
  | { kind: 'offline'; reason: string }
  | { kind: 'denied' }
  | { kind: 'paused' };

export interface PlayerStats {
  transport: Transport | null;
  codec: string | null;
  width: number;
  height: number;
  /** Received video bitrate over the last sample, kbit/s. */
  bitrateKbps: number | null;
  /** How far the picture is behind the live edge, as far as the transport tells. */
  latencyMs: number | null;
  framesDecoded: number;
  currentTime: number;
}

interface ViewUrls {
  hls: string;
  wsFlv: string;
  whep: string;
  token: string;
  profile: string;
  /** The gateway's STUN/TURN servers, for screens that reach it only through one. */
  iceServers?: RTCIceServer[];
}

interface Attempt {
  transport: Transport;
  /** Resolves at the first decoded frame; rejects when the transport fails before. */
  ready: Promise<void>;
  /** Whether media is on its way (the peer connected, the stream's header or a segment arrived). */
  progressed(): boolean;
  /** Rejects when the transport is lost after it played (its connection closed, or WebRTC disconnected for 1 s); never resolves. */
  dropped: Promise<never>;
  close(): void;
  stats(): Promise<Pick<PlayerStats, 'codec' | 'bitrateKbps' | 'latencyMs'>>;
}

const FIRST_FRAME_MS: Record<Transport, number> = { webrtc: 10_000, flv: 8_000, hls: 15_000 };
/**
 * More time for a transport whose media is already arriving when its deadline passes: on a busy
 * screen the first decoded frame can be late, and starting another transport would cost more.
 */
const PROGRESS_GRACE_MS = 10_000;
const STALL_MS = 6_000;
const RETRY_MIN_MS = 2_000;
const RETRY_MAX_MS = 30_000;

export interface StreamPlayerOptions {
  cameraId: string;
  profile: 'main' | 'sub';
  transports?: readonly Transport[];
  onState?(s: PlayerState): void;
}

export class StreamPlayer {
  readonly video: HTMLVideoElement;
  state: PlayerState = { kind: 'starting', transport: null };
  private attempt: Attempt | null = null;
  private generation = 0;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private abort: AbortController | null = null;
  private destroyed = false;
  private lastProgress = { frames: 0, at: 0 };

  constructor(private readonly opts: StreamPlayerOptions) {
    const v = document.createElement('video');
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disablePictureInPicture = true;
    v.setAttribute('muted', '');
    v.setAttribute('playsinline', '');
    this.video = v;
    window.addEventListener(NODE_CHANGED, this.onNodeChanged);
  }

  /** The page reached another node of the cluster: a player waiting out its backoff tries there now. */
  private readonly onNodeChanged = () => {
    if (this.destroyed || this.state.kind !== 'retrying') return;
    this.failures = 0;
    this.start();
  };

  get cameraId() {
    return this.opts.cameraId;
  }
  get profile() {
    return this.opts.profile;
  }

  start(): void {
    if (this.destroyed) return;
    clearTimeout(this.timer);
    void this.run(++this.generation);
  }

  /** Stops playing and releases the stream (the gateway may close the pull), keeping the element. */
  pause(): void {
    this.generation++;
    this.stopTransport();
    this.setState({ kind: 'paused' });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    window.removeEventListener(NODE_CHANGED, this.onNodeChanged);
    this.generation++;
    this.stopTransport();
    this.video.remove();
  }

  async stats(): Promise<PlayerStats> {
    const v = this.video;
    const base: PlayerStats = {
      transport: this.attempt?.transport ?? null,
      codec: null,
      width: v.videoWidth,
      height: v.videoHeight,
      bitrateKbps: null,
      latencyMs: null,
      framesDecoded: v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0,
      currentTime: v.currentTime,
    };
    return this.attempt ? { ...base, ...(await this.attempt.stats().catch(() => ({}))) } : base;
  }

  private setState(s: PlayerState) {
    this.state = s;
    this.opts.onState?.(s);
  }

  private stopTransport() {
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    this.abort?.abort();
    this.abort = null;
    this.attempt?.close();
    this.attempt = null;
    resetElement(this.video);
  }

  private async run(gen: number) {
    this.stopTransport();
    this.setState({ kind: 'starting', transport: null });
    const abort = (this.abort = new AbortController());
    let urls: ViewUrls;
    try {
      // Absolute on the node that answered: a page that fails over to another node meanwhile keeps these until they fail.
      urls = streamUrlsOnNode(
        await api<ViewUrls>('POST', `/api/streams/${encodeURIComponent(this.opts.cameraId)}/view?profile=${this.opts.profile}`, {
          signal: abort.signal,
        }),
      );
    } catch (e) {
      if (gen !== this.generation) return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 403)) return this.setState({ kind: 'denied' });
      if (e instanceof ApiError && e.status === 409) return this.retry(gen, errorText(e), true);
      return this.retry(gen, errorText(e));
    }
    let lastError = '';
    for (const transport of this.opts.transports ?? TRANSPORTS) {
      if (gen !== this.generation) return;
      this.setState({ kind: 'starting', transport });
      // Each attempt has its own signal, so a failed one releases its pending frame callback at once.
      const attemptAbort = new AbortController();
      abort.signal.addEventListener('abort', () => attemptAbort.abort(), { once: true });
      const opened = open(transport, urls, this.video, attemptAbort.signal);
      const attempt: Attempt = {
        ...opened,
        close() {
          attemptAbort.abort();
          opened.close();
        },
      };
      // A transport that loses the race against its deadline may still fail later: nobody is waiting then.
      attempt.ready.catch(() => {});
      this.attempt = attempt;
      let deadline: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          attempt.ready,
          new Promise((_, reject) => {
            const fail = () => reject(new Error(t('player.noPicture', { transport, seconds: FIRST_FRAME_MS[transport] / 1000 })));
            deadline = setTimeout(() => {
              if (attempt.progressed()) deadline = setTimeout(fail, PROGRESS_GRACE_MS);
              else fail();
            }, FIRST_FRAME_MS[transport]);
          }),
        ]);
        clearTimeout(deadline);
      } catch (e) {
        clearTimeout(deadline);
        attempt.close();
        if (this.attempt === attempt) this.attempt = null;
        // WebRTC sets srcObject as soon as it negotiates, and a media element prefers srcObject to the
        // src an MSE player sets: a WebRTC attempt that got no picture would blind the next transport.
        resetElement(this.video);
        const message = (e as Error).message;
        lastError = message.startsWith(`${transport}`) ? message : t('player.failed', { transport, message });
        continue;
      }
      if (gen !== this.generation) return attempt.close();
      this.failures = 0;
      this.setState({ kind: 'live', transport });
      this.watchStalls(gen);
      // A lost connection (its node died, say) is started over at once, not when the picture is seen to stall.
      // It was playing, so the first try goes at once (another node may hold the camera already); failures back off as usual.
      attempt.dropped.catch(() => {
        if (gen !== this.generation || this.attempt !== attempt) return;
        this.stopTransport();
        this.start();
      });
      return;
    }
    if (gen === this.generation) this.retry(gen, lastError);
  }

  /**
   * A live picture that stops moving is started over, as a dropped one would be. Decoded frames are
   * the measure: a WebRTC stream's clock (currentTime) runs on when its packets stop.
   */
  private watchStalls(gen: number) {
    const frames = () => this.video.getVideoPlaybackQuality().totalVideoFrames;
    this.lastProgress = { frames: frames(), at: performance.now() };
    this.watchdog = setInterval(() => {
      if (gen !== this.generation) return;
      const now = performance.now();
      const decoded = frames();
      if (decoded !== this.lastProgress.frames) this.lastProgress = { frames: decoded, at: now };
      else if (now - this.lastProgress.at > STALL_MS) this.retry(gen, t('player.stopped'));
    }, 1_000);
  }

  private retry(gen: number, reason: string, offline = false) {
    this.stopTransport();
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.failures++);
    const until = Date.now() + delay;
    this.setState(offline ? { kind: 'offline', reason } : { kind: 'retrying', until, reason });
    this.timer = setTimeout(() => {
      if (gen === this.generation) this.start();
    }, delay);
  }
}

/** A promise a transport rejects when its connection is lost after it played, and the function that does it. */
function dropSignal(): { dropped: Promise<never>; drop(e: Error): void } {
  let drop: (e: Error) => void = () => {};
  const dropped = new Promise<never>((_, reject) => (drop = reject));
  dropped.catch(() => {});
  return { dropped, drop };
}

function resetElement(video: HTMLVideoElement) {
  video.pause();
  video.srcObject = null;
  video.removeAttribute('src');
  video.load();
}

/** Resolves at the first frame the element decodes; an aborted wait cancels its callback. */
function firstFrame(video: HTMLVideoElement, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('stopped'));
    const handle = video.requestVideoFrameCallback(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    const onAbort = () => {
      video.cancelVideoFrameCallback(handle);
      reject(new Error('stopped'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function open(transport: Transport, urls: ViewUrls, video: HTMLVideoElement, signal: AbortSignal): Attempt {
  if (transport === 'webrtc') return openWebRtc(urls, video, signal);
  if (transport === 'flv') return openFlv(urls, video, signal);
  return openHls(urls, video, signal);
}

function openWebRtc(urls: ViewUrls, video: HTMLVideoElement, signal: AbortSignal): Attempt {
  const pc = new RTCPeerConnection({ iceServers: urls.iceServers ?? [] });
  let resource: string | null = null;
  let closed = false;
  let last: { bytes: number; at: number } | null = null;
  const { dropped, drop } = dropSignal();
  let disconnected: ReturnType<typeof setTimeout> | undefined;
  const failed = new Promise<never>((_, reject) => {
    pc.onconnectionstatechange = () => {
      clearTimeout(disconnected);
      if (pc.connectionState === 'failed') {
        reject(new Error(t('player.connectionFailed')));
        drop(new Error(t('player.connectionFailed')));
      }
      // The node went away (ICE consent lost): not a blip if it lasts, and ICE takes far longer to call it failed.
      if (pc.connectionState === 'disconnected') disconnected = setTimeout(() => drop(new Error(t('player.connectionFailed'))), 1_000);
    };
  });
  const negotiate = async () => {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      video.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    await pc.setLocalDescription(await pc.createOffer());
    // One round trip instead of trickling: the offer goes with the candidates gathered within a second.
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 1_000);
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    const res = await fetch(urls.whep, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${urls.token}` },
      body: pc.localDescription?.sdp ?? '',
      signal,
    });
    const answer = await res.text();
    if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${gatewayText(answer)}`);
    const location = res.headers.get('location');
    // Relative to the node that answered (after any redirect), not to the page.
    resource = location ? new URL(location, res.url).href : null;
    if (closed) return release();
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  };
  const release = () => {
    if (resource) void fetch(resource, { method: 'DELETE', headers: { authorization: `Bearer ${urls.token}` }, keepalive: true }).catch(() => {});
    resource = null;
  };
  const ready = Promise.race([negotiate().then(() => firstFrame(video, signal)), failed]);
  return {
    transport: 'webrtc',
    ready,
    dropped,
    progressed: () => pc.connectionState === 'connected',
    close() {
      closed = true;
      clearTimeout(disconnected);
      pc.ontrack = null;
      pc.close();
      release();
    },
    async stats() {
      const report = await pc.getStats();
      let codec: string | null = null;
      let bitrateKbps: number | null = null;
      let latencyMs: number | null = null;
      report.forEach((s: Record<string, unknown>) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        const codecStat = s.codecId ? (report.get(String(s.codecId)) as { mimeType?: string } | undefined) : undefined;
        codec = codecStat?.mimeType?.replace(/^video\//, '') ?? null;
        const now = performance.now();
        const bytes = Number(s.bytesReceived ?? 0);
        if (last && now > last.at) bitrateKbps = Math.round(((bytes - last.bytes) * 8) / (now - last.at));
        last = { bytes, at: now };
        const emitted = Number(s.jitterBufferEmittedCount ?? 0);
        if (emitted > 0) latencyMs = Math.round((Number(s.jitterBufferDelay ?? 0) / emitted) * 1000);
      });
      return { codec, bitrateKbps, latencyMs };
    },
  };
}

function openFlv(urls: ViewUrls, video: HTMLVideoElement, signal: AbortSignal): Attempt {
  let player: Mpegts.Player | null = null;
  let closed = false;
  let gotMedia = false;
  const { dropped, drop } = dropSignal();
  const wsUrl = urls.wsFlv;
  const ready = (async () => {
    const mpegts = (await import('mpegts.js')).default;
    if (closed) throw new Error('stopped');
    if (!mpegts.isSupported()) throw new Error(t('player.noMse'));
    player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: wsUrl, hasAudio: false },
      { enableWorker: false, lazyLoad: false, liveBufferLatencyChasing: true, liveBufferLatencyMaxLatency: 2, liveBufferLatencyMinRemain: 0.3, autoCleanupSourceBuffer: true },
    );
    const failed = new Promise<never>((_, reject) => {
      const fail = (e: Error) => {
        reject(e);
        drop(e);
      };
      player!.on(mpegts.Events.ERROR, (type: string, detail: string) => fail(new Error(`${type} ${detail}`)));
      // The gateway closes the WebSocket when the camera cannot start (the handshake no longer waits for it), or its node goes.
      player!.on(mpegts.Events.LOADING_COMPLETE, () => fail(new Error(t('player.streamEnded'))));
    });
    player.on(mpegts.Events.MEDIA_INFO, () => (gotMedia = true));
    player.attachMediaElement(video);
    player.load();
    void Promise.resolve(player.play()).catch(() => {});
    await Promise.race([firstFrame(video, signal), failed]);
  })();
  return {
    transport: 'flv',
    ready,
    dropped,
    progressed: () => gotMedia,
    close() {
      closed = true;
      if (!player) return;
      try {
        player.pause();
        player.unload();
        player.detachMediaElement();
        player.destroy();
      } catch {
        // Already torn down by its own error.
      }
      player = null;
    },
    async stats() {
      const info = player?.statisticsInfo as { speed?: number } | undefined;
      const media = player?.mediaInfo as { videoCodec?: string } | undefined;
      return {
        codec: media?.videoCodec ?? null,
        bitrateKbps: info?.speed !== undefined ? Math.round(info.speed * 8) : null,
        latencyMs: liveLatency(video),
      };
    },
  };
}

function openHls(urls: ViewUrls, video: HTMLVideoElement, signal: AbortSignal): Attempt {
  let hls: Hls | null = null;
  let closed = false;
  let bitrate: number | null = null;
  let fragments = 0;
  const { dropped, drop } = dropSignal();
  const ready = (async () => {
    const HlsClass = (await import('hls.js')).default;
    if (closed) throw new Error('stopped');
    if (!HlsClass.isSupported()) throw new Error(t('player.noMse'));
    const player = new HlsClass({ liveSyncDurationCount: 2, maxBufferLength: 8, backBufferLength: 4, manifestLoadingMaxRetry: 4, enableWorker: true });
    hls = player;
    const failed = new Promise<never>((_, reject) =>
      player.on(HlsClass.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        reject(new Error(hlsFailure(data)));
        drop(new Error(hlsFailure(data)));
      }),
    );
    player.on(HlsClass.Events.FRAG_LOADED, (_e, data) => {
      const s = data.frag.stats;
      const ms = s.loading.end - s.loading.start;
      fragments++;
      if (ms > 0 && data.frag.duration > 0) bitrate = Math.round((s.loaded * 8) / 1000 / data.frag.duration);
    });
    player.loadSource(urls.hls);
    player.attachMedia(video);
    void video.play().catch(() => {});
    await Promise.race([firstFrame(video, signal), failed]);
  })();
  return {
    transport: 'hls',
    ready,
    dropped,
    progressed: () => fragments > 0,
    close() {
      closed = true;
      hls?.destroy();
      hls = null;
    },
    async stats() {
      const level = hls?.levels[hls.currentLevel >= 0 ? hls.currentLevel : 0];
      return { codec: level?.videoCodec ?? null, bitrateKbps: bitrate, latencyMs: hls?.latency ? Math.round(hls.latency * 1000) : liveLatency(video) };
    },
  };
}

/** For MSE players: how much is buffered ahead of what is shown. */
function liveLatency(video: HTMLVideoElement): number | null {
  const b = video.buffered;
  return b.length > 0 ? Math.round((b.end(b.length - 1) - video.currentTime) * 1000) : null;
}

/** A fatal hls.js error; a refused playlist or segment is told by the gateway's error body, in the page's language. */
function hlsFailure(data: { type: string; details: string; response?: { code?: number }; networkDetails?: unknown }): string {
  let body = '';
  try {
    // hls.js loads playlists with XMLHttpRequest and hands the request over with the error.
    const text = (data.networkDetails as XMLHttpRequest | undefined)?.responseText;
    if (typeof text === 'string' && text.startsWith('{')) body = gatewayText(text);
  } catch {
    // Not a text response: the type says enough.
  }
  return body ? `HLS ${data.response?.code ?? ''}: ${body}` : `${data.type} ${data.details}`;
}

/** A gateway error body (WHEP, HLS) as one line in the page's language, without echoing anything long. */
function gatewayText(text: string): string {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    return codeText(failureOf(body, '')).slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
