/** One coded picture of a camera's video, as the PS demuxer hands it on and the ES ingest takes it. */
export interface AccessUnit {
  codec: 'h264' | 'h265';
  /** Presentation time on the 90 kHz clock (33 bits, as PS and MPEG-TS carry it). */
  pts90k: number;
  /** Holds an IDR/IRAP picture or a sequence parameter set: a decoder may start here. */
  key: boolean;
  /** Annex-B: NAL units each behind a start code. */
  data: Buffer;
}
