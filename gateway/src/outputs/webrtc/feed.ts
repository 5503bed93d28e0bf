import type { FlvTag } from '../../streams/types.js';
import type { LiveStream } from '../stream-access.js';
import { H264Packetizer, type AccessUnit } from './h264.js';

/** What the feed needs of a peer: it is handed each frame and must never block the others. */
export interface FeedSink {
  sendLive(au: AccessUnit): void;
  /** Frames were dropped: skip to the next keyframe. */
  resync(): void;
}

/** A GOP that never ends (a camera with a 10-minute keyframe interval) stops being cached past this. */
const MAX_CACHED_FRAMES = 1_500;
/** About 30 ms of sending on this machine (~35 µs a packet) before the event loop gets a turn. */
const SENDS_PER_TURN = 800;
/** A second of video at 25 fps waiting to be sent means the fan-out is overloaded. */
const MAX_PENDING_FRAMES = 25;

/**
 * A session's WebRTC side, created with its first peer and dropped with its last: packetizes the
 * session's H.264 once into RTP payloads, keeps the frames since the last keyframe (the keyframe
 * cache a joining peer starts from), and hands each frame to every peer.
 */
export class RtpFeed {
  readonly peers = new Set<FeedSink>();
  private readonly packetizer = new H264Packetizer();
  private gop: AccessUnit[] = [];
  private reorderingHandled = false;
  /** Frames not yet handed to every peer that was watching when they came, in order. */
  private pending: { au: AccessUnit; to: FeedSink[] }[] = [];
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
    for (const tag of session.joinTags()) this.push(tag, false);
    session.on('tag', this.onTag);
  }

  /** The frames since the last keyframe, oldest (the keyframe) first; empty before the first keyframe. */
  get keyframeCache(): readonly AccessUnit[] {
    return this.gop;
  }

  private push(tag: FlvTag, live = true) {
    if (tag.type !== 9) return;
    const au = this.packetizer.push(tag.data, tag.timestamp);
    if (!au) return;
    if (this.packetizer.sawReordering && !this.reorderingHandled && !this.session.transcoding) {
      // Browsers' WebRTC decoders take frames in the order they arrive: B-frames would play out of
      // order. The session restarts once with the shared transcode, which makes none.
      this.reorderingHandled = true;
      if (this.session.reportUndecodable('B-frames, which WebRTC cannot reorder')) return;
      this.onTranscodeRefused();
    }
    if (au.keyframe) this.gop = [au];
    else if (this.gop.length > 0 && this.gop.length < MAX_CACHED_FRAMES) this.gop.push(au);
    else if (this.gop.length >= MAX_CACHED_FRAMES) this.gop = [];
    if (!live || this.peers.size === 0) return;
    if (this.pending.length >= MAX_PENDING_FRAMES) this.shed();
    this.pending.push({ au, to: [...this.peers] });
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
        job.to[this.cursor++]!.sendLive(job.au);
        this.sentThisTurn += job.au.payloads.length;
      }
      if (this.cursor < job.to.length) {
        setImmediate(() => this.drain());
        return;
      }
      this.pending.shift();
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
    this.cursor = 0;
    this.overloads++;
    this.onOverload();
  }

  detach() {
    this.session.off('tag', this.onTag);
    this.gop = [];
    this.pending = [];
    this.cursor = 0;
  }
}
