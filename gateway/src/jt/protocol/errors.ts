/**
 * The one error the JT/T 808 and 1078 decoders throw on bad network input. Anything else escaping
 * them is a bug (the fuzz tests hold them to it). Re-exported by frame.ts, where the contract names it.
 */
export type JtParseErrorKind =
  /** 0x7D followed by anything but 0x01/0x02. */
  | 'escape'
  /** The XOR check byte does not match. */
  | 'checksum'
  /** Fewer bytes than the fields need. */
  | 'truncated'
  /** A length field that disagrees with the bytes there are. */
  | 'length'
  /** More than a configured limit. */
  | 'oversize'
  /** A frame header that cannot be (phone not BCD, packet number 0 or past the total). */
  | 'header'
  /** A body field out of its range (a BCD time that is not a time, an unknown command code). */
  | 'value';

export class JtParseError extends Error {
  constructor(
    readonly kind: JtParseErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'JtParseError';
  }
}
