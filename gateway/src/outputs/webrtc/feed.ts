import type { FlvTag } from '../../streams/types.js';
import type { LiveStream } from '../stream-access.js';
import { H264Packetizer, type AccessUnit } from './h264.js';

/** What the feed needs of a peer: it is handed each frame and must never block the others. */
export interface FeedSink {
  sendLive(au: AccessUnit): void;
  /** A frame of the peer's join burst, to be sent with this RTP timestamp. */
  sendCached(au: AccessUnit, timestamp: number): void;
  /** Frames were dropped: skip to the next keyframe. */
  resync(): void;
}

/** Cached frames are replayed this far apart (1 ms at 90 kHz): the decoder catches up to live at once. */
const BURST_SPACING = 90;
/** About 30 ms of sending on this machine (~35 µs a packet) before the event loop gets a turn. */
const SENDS_PER_TURN = 800;
/** A second of video at 25 fps waiting to be sent means the fan-out is overloaded. */
const MAX_PENDING_FRAMES = 25;

interface Job {
  au: AccessUnit;
  to: FeedSink[];
  /** Set for a frame of a join burst: the timestamp it is sent with. */
  burstTimestamp?: number;
}

/**
 * A session's WebRTC side, created with its first peer and dropped with its last: packetizes the
 * session's H.264 once into RTP payloads and hands each frame to every peer. It keeps no GOP: a
 * joining peer's burst is packetized from the session's one cached copy, and queued behind the
 * frames already waiting, under the same per-turn budget.
 */
export class RtpFeed {
  readonly peers = new Set<FeedSink>();
  private readonly packetizer = new H264Packetizer();
  private reorderingHandled = false;
  /** The newest live frame's index: a joining peer's burst covers every frame up to it. */
  private newestIndex = 0;
  /** Frames not yet handed to every peer that was watching when they came, in order. */
  private pending: Job[] = [];
  /** Live frames among them: a backlog of those means overload (a join burst is not one). */
  private pendingLive = 0;
  private cursor = 0;
  private draining = false;
  /** Packets handed out in this event-loop turn, across every drain of it. */
  private sentThisTurn = 0;
  private budgetResetScheduled = false;
  /** Times the backlog was dropped for overload. */
  overloads = 0;
  private readonly onTag = (tag: FlvTag) => this.push(tag);

  constructor(
    readonly session: LiveStream,
    /** Every transcode slot is busy: the stream's B-frames cannot be removed for WebRTC viewers. */
    private readonly onTranscodeRefused: () => void = () => {},
    /** The fan-out fell a second behind and dropped its backlog. */
    private readonly onOverload: () => void = () => {},
  ) {
    // The decoder configuration only: frames before this feed existed reach a peer through its join burst.
    for (const tag of session.joinTags()) if (tag.header && tag.type === 9) this.packetizer.push(tag.data, tag.timestamp);
    session.on('tag', this.onTag);
  }

  /**
   * Queues the session's cached GOP for a peer that just connected, squeezed 1 ms apart up to the
   * newest frame, so its decoder starts on the keyframe and reaches live at once. Returns the index
   * of the newest live frame the burst covers (the peer skips those when they come live), or null
   * when nothing is cached and the peer waits for the next keyframe.
   */
  join(peer: FeedSink): number | null {
    const packetizer = new H264Packetizer();
    const burst: AccessUnit[] = [];
    for (const tag of this.session.joinTags()) {
      if (tag.type !== 9) continue;
      const au = packetizer.push(tag.data, tag.timestamp);
      if (au && (au.keyframe || burst.length > 0)) burst.push(au);
    }
    if (burst.length === 0) return null;
    const newest = burst.at(-1)!.timestamp;
    burst.forEach((au, i) => this.pending.push({ au, to: [peer], burstTimestamp: newest - (burst.length - 1 - i) * BURST_SPACING }));
    // Not before the peer has heard where its burst ends: it then skips the live frames the burst holds.
    queueMicrotask(() => {
      if (!this.draining) this.drain();
    });
    return this.newestIndex;
  }

  private push(tag: FlvTag) {
    if (tag.type !== 9) return;
    const au = this.packetizer.push(tag.data, tag.timestamp);
    if (!au) return;
    this.newestIndex = au.index;
    if (this.packetizer.sawReordering && !this.reorderingHandled && !this.session.transcoding) {
      // Browsers' WebRTC decoders take frames in the order they arrive: B-frames would play out of
      // order. The session restarts once with the shared transcode, which makes none.
      this.reorderingHandled = true;
      if (this.session.reportUndecodable('B-frames, which WebRTC cannot reorder')) return;
      this.onTranscodeRefused();
    }
    if (this.peers.size === 0) return;
    if (this.pendingLive >= MAX_PENDING_FRAMES) this.shed();
    this.pending.push({ au, to: [...this.peers] });
    this.pendingLive++;
    if (!this.draining) this.drain();
  }

  /**
   * Sends queued frames to their peers, at most SENDS_PER_TURN packets per event-loop turn. One
   * keyframe to a hundred peers is thousands of encrypted datagrams; sent in one go they would hold
   * the loop long enough for ffmpeg's output pipe to fill and the camera's pull to stall, costing
   * every viewer of every camera frames. In turns, the pipe is read in between.
   */
  private drain() {
    this.draining = true;
    if (!this.budgetResetScheduled) {
      // Runs before a continuation scheduled later in this turn, so the next turn starts afresh.
      this.budgetResetScheduled = true;
      setImmediate(() => {
        this.sentThisTurn = 0;
        this.budgetResetScheduled = false;
      });
    }
    while (this.pending.length > 0) {
      const job = this.pending[0]!;
      while (this.cursor < job.to.length && this.sentThisTurn < SENDS_PER_TURN) {
        const sink = job.to[this.cursor++]!;
        if (job.burstTimestamp === undefined) sink.sendLive(job.au);
        else sink.sendCached(job.au, job.burstTimestamp);
        this.sentThisTurn += job.au.payloads.length;
      }
      if (this.cursor < job.to.length) {
        setImmediate(() => this.drain());
        return;
      }
      this.pending.shift();
      if (job.burstTimestamp === undefined) this.pendingLive--;
      this.cursor = 0;
    }
    this.draining = false;
  }

  /**
   * The gateway cannot send as fast as the camera sends (CPU overload): rather than a queue and a
   * delay that grow without end, the backlog goes and every peer resumes at the next keyframe.
   */
  private shed() {
    for (const job of this.pending) for (const peer of job.to) peer.resync();
    this.pending = [];
    this.pendingLive = 0;
    this.cursor = 0;
    this.overloads++;
    this.onOverload();
  }

  detach() {
    this.session.off('tag', this.onTag);
    this.pending = [];
    this.pendingLive = 0;
    this.cursor = 0;
  }
}
