import type { StreamSession } from '../../streams/session.js';
import type { FlvTag } from '../../streams/types.js';
import { H264Packetizer, type AccessUnit } from './h264.js';

/** What the feed needs of a peer: it is handed each frame and must never block the others. */
export interface FeedSink {
  sendLive(au: AccessUnit): void;
}

/** A GOP that never ends (a camera with a 10-minute keyframe interval) stops being cached past this. */
const MAX_CACHED_FRAMES = 1_500;

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
  private readonly onTag = (tag: FlvTag) => this.push(tag);

  constructor(
    readonly session: StreamSession,
    /** Every transcode slot is busy: the stream's B-frames cannot be removed for WebRTC viewers. */
    private readonly onTranscodeRefused: () => void = () => {},
  ) {
    for (const tag of session.joinTags()) this.push(tag, false);
    session.on('tag', this.onTag);
  }

  /** The frames since the last keyframe, oldest (the keyframe) first; empty before the first keyframe. */
  get keyframeCache(): readonly AccessUnit[] {
    return this.gop;
  }

  /** The stream's H.264 profile and level as in SDP (profile-level-id), once known. */
  get profileLevelId(): string | null {
    return this.packetizer.config?.profileLevelId ?? null;
  }

  private push(tag: FlvTag, live = true) {
    if (tag.type !== 9) return;
    const au = this.packetizer.push(tag.data, tag.timestamp);
    if (!au) return;
    if (this.packetizer.sawReordering && !this.reorderingHandled && !this.session.transcoding) {
      // Browsers' WebRTC decoders take frames in the order they arrive: B-frames would play out of
      // order. The session restarts once with the shared transcode, which makes none.
      this.reorderingHandled = true;
      if (this.session.restartWithTranscode('B-frames, which WebRTC cannot reorder')) return;
      this.onTranscodeRefused();
    }
    if (au.keyframe) this.gop = [au];
    else if (this.gop.length > 0 && this.gop.length < MAX_CACHED_FRAMES) this.gop.push(au);
    else if (this.gop.length >= MAX_CACHED_FRAMES) this.gop = [];
    if (!live) return;
    for (const peer of this.peers) peer.sendLive(au);
  }

  detach() {
    this.session.off('tag', this.onTag);
    this.gop = [];
  }
}
