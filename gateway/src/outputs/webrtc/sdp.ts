import { ValidationError } from '../../errors.js';

/** What the gateway needs from a WHEP client's offer, checked before any peer or reader exists. */
export interface CheckedOffer {
  /** The offer with the chosen H.264 payload type first in the video m-line, so it is the one sent. */
  sdp: string;
  videoPayloadType: number;
  videoMid: string | null;
}

const MDNS_CANDIDATE = /^a=candidate:\S+ \d+ \S+ \d+ \S+\.local /i;

const invalid = (message: string) => new ValidationError([{ field: 'offer', message }]);

interface Section {
  lines: string[];
}

function sections(sdp: string): { session: string[]; media: Section[] } {
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  const session: string[] = [];
  const media: Section[] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) media.push({ lines: [line] });
    else if (media.length) media.at(-1)!.lines.push(line);
    else session.push(line);
  }
  return { session, media };
}

const attr = (lines: string[], name: string) => lines.find((l) => l.startsWith(`a=${name}:`))?.slice(name.length + 3);
const has = (lines: string[], flag: string) => lines.includes(`a=${flag}`);

/**
 * Ranks an H.264 profile-level-id: a decoder declared for High decodes Main and Constrained
 * Baseline too, so the highest common profile is the safest for a camera stream of unknown profile.
 */
function profileRank(profileLevelId: string | undefined): number {
  const idc = profileLevelId?.slice(0, 2).toLowerCase();
  if (idc === '64') return 3;
  if (idc === '4d') return 2;
  if (idc === '42') return 1;
  return 0;
}

/**
 * Checks a WHEP offer: SDP with ICE credentials and a DTLS fingerprint, a video m-line the client
 * receives on, and H.264 in packetization mode 1 among its codecs. Throws a ValidationError naming
 * the field otherwise.
 */
export function checkOffer(sdp: string): CheckedOffer {
  if (!sdp.startsWith('v=0')) throw invalid('not an SDP offer (it must start with "v=0")');
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(sdp)) throw invalid('contains control characters');
  const { session, media } = sections(sdp);
  const video = media.find((m) => m.lines[0]!.startsWith('m=video '));
  if (!video) throw invalid('has no video m-line');
  const mLine = video.lines[0]!.split(' ');
  if (mLine.length < 4 || !/^\d+$/.test(mLine[1]!)) throw invalid('the video m-line is malformed');
  if (!mLine[2]!.includes('SAVPF')) throw invalid(`the video m-line uses ${mLine[2]}; WebRTC needs UDP/TLS/RTP/SAVPF`);
  if (has(video.lines, 'sendonly') || has(video.lines, 'inactive')) throw invalid('the video m-line must be recvonly or sendrecv');
  if (mLine[1] === '0') throw invalid('the video m-line is rejected (port 0)');
  for (const name of ['ice-ufrag', 'ice-pwd', 'fingerprint']) {
    if (!attr(video.lines, name) && !attr(session, name)) throw invalid(`has no a=${name}`);
  }
  const payloadTypes = mLine.slice(3);
  let best: { pt: string; rank: number } | null = null;
  for (const pt of payloadTypes) {
    const rtpmap = video.lines.find((l) => l.startsWith(`a=rtpmap:${pt} `))?.slice(`a=rtpmap:${pt} `.length);
    if (!rtpmap || !/^H264\/90000$/i.test(rtpmap.trim())) continue;
    const fmtp = video.lines.find((l) => l.startsWith(`a=fmtp:${pt} `))?.slice(`a=fmtp:${pt} `.length) ?? '';
    const params = new Map(fmtp.split(';').map((kv) => kv.trim().split('=') as [string, string]));
    if (params.get('packetization-mode') !== '1') continue;
    const rank = profileRank(params.get('profile-level-id'));
    if (!best || rank > best.rank) best = { pt, rank };
  }
  if (!best) throw invalid('offers no H.264 with packetization-mode=1 for video');
  const reordered = [...mLine.slice(0, 3), best.pt, ...payloadTypes.filter((p) => p !== best.pt)].join(' ');
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  // Browsers hide their addresses behind mDNS names; resolving them would make the gateway send
  // multicast queries on the command centre's network. Their connectivity checks reveal the real
  // address anyway (a peer-reflexive candidate), which is what works from another subnet too.
  const lines = sdp.split(/\r?\n/).filter((l) => !MDNS_CANDIDATE.test(l));
  const mIndex = lines.indexOf(video.lines[0]!);
  lines[mIndex] = reordered;
  return { sdp: lines.join(eol), videoPayloadType: Number(best.pt), videoMid: attr(video.lines, 'mid') ?? null };
}

/**
 * Keeps the answer's host candidates to the announced addresses: each becomes one host candidate on
 * the port the gateway listens on, so the answer never lists every interface of the machine. With
 * no address to announce, the one picked host candidate (preferLocal's, else the first IPv4) stays.
 * Server-reflexive and relay candidates (from STUN/TURN) are kept.
 */
export function announceCandidates(answer: string, announced: string[], preferLocal: string | null): string {
  const lines = answer.split(/\r\n|\n/);
  const out: string[] = [];
  const hostLines = lines.filter((l) => /^a=candidate:\S+ \d+ udp \d+ \S+ \d+ typ host/i.test(l));
  const pick = hostLines.find((l) => l.split(' ')[4] === preferLocal) ?? hostLines.find((l) => !l.split(' ')[4]!.includes(':')) ?? hostLines[0];
  let emitted = false;
  for (const line of lines) {
    if (hostLines.includes(line)) {
      if (emitted || !pick) continue;
      emitted = true;
      const parts = pick.split(' ');
      if (announced.length === 0) out.push(pick);
      announced.forEach((address, i) => {
        const copy = [...parts];
        copy[0] = `a=candidate:${i + 1}`;
        copy[3] = String(2_130_706_431 - i);
        copy[4] = address;
        out.push(copy.join(' '));
      });
      continue;
    }
    if (line.startsWith('c=IN IP4 ') && announced[0] && !announced[0].includes(':')) {
      out.push(`c=IN IP4 ${announced[0]}`);
      continue;
    }
    out.push(line);
  }
  return out.join('\r\n');
}

/** The candidates of a trickle-ICE fragment (RFC 8840), and whether it asks for an ICE restart. */
export function parseSdpFragment(fragment: string): { candidates: string[]; ufrag: string | null; mid: string | null } {
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(fragment)) {
    throw new ValidationError([{ field: 'body', message: 'contains control characters' }]);
  }
  const lines = fragment.split(/\r?\n/).filter(Boolean);
  const candidates: string[] = [];
  let ufrag: string | null = null;
  let mid: string | null = null;
  for (const line of lines) {
    if (line.startsWith('a=candidate:')) candidates.push(line.slice(2));
    else if (line.startsWith('a=ice-ufrag:')) ufrag = line.slice(12);
    else if (line.startsWith('a=mid:')) mid = line.slice(6);
  }
  return { candidates, ufrag, mid };
}
