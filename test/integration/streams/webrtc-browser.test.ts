import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Page } from 'playwright-core';
import t from 'tap';
import { CHROMIUM, CHROMIUM_ARGS } from '../../helpers/browser.js';
import { startStreamingGateway, waitFor } from '../../helpers/streams.js';

/**
 * A real browser is the WebRTC client that counts: Chromium offers only mDNS `<uuid>.local` host
 * candidates, never an address, so the gateway connects only by resolving those names or by learning
 * the browser's address from its connectivity checks (peer-reflexive candidates). A werift client
 * announces 127.0.0.1 and would hide a break there.
 */

const ARTIFACTS = 'test-artifacts';

/**
 * A minimal WHEP player, run in the page. Kept as plain JavaScript text: tsx compiles functions with
 * helpers (`__name`) that do not exist in the page, and the project has no DOM types.
 */
const PLAY = `async (url, token) => {
  const state = { t0: performance.now(), errors: [], firstFrameMs: null, presentedFrames: 0, resource: null };
  window.__whep = state;
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute('muted', '');
  video.setAttribute('autoplay', '');
  video.setAttribute('playsinline', '');
  video.style.width = '640px';
  document.body.appendChild(video);
  state.video = video;
  const onFrame = (_now, meta) => {
    state.presentedFrames = meta.presentedFrames;
    if (state.firstFrameMs === null) state.firstFrameMs = performance.now() - state.t0;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);

  const pc = new RTCPeerConnection();
  state.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch((err) => state.errors.push('play: ' + err.message));
  };
  await pc.setLocalDescription(await pc.createOffer());
  // The gateway does not trickle: send the offer with what gathered within a second.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, 1000);
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    };
  });
  const gatherMs = Math.round(performance.now() - state.t0);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + token },
    body: pc.localDescription.sdp,
  });
  const answer = await res.text();
  if (res.status !== 201) throw new Error('WHEP ' + res.status + ': ' + answer);
  state.resource = res.headers.get('location');
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return { offer: pc.localDescription.sdp, answer, gatherMs, answerMs: Math.round(performance.now() - state.t0) };
}`;

interface PlayerStats {
  currentTime: number;
  totalVideoFrames: number;
  presentedFrames: number;
  width: number;
  height: number;
  readyState: number;
  connection: string;
  ice: string;
  firstFrameMs: number | null;
  errors: string[];
}

const STATS = `(() => {
  const s = window.__whep;
  const v = s.video;
  return {
    currentTime: v.currentTime,
    totalVideoFrames: v.getVideoPlaybackQuality().totalVideoFrames,
    presentedFrames: s.presentedFrames,
    width: v.videoWidth,
    height: v.videoHeight,
    readyState: v.readyState,
    connection: s.pc.connectionState,
    ice: s.pc.iceConnectionState,
    firstFrameMs: s.firstFrameMs === null ? null : Math.round(s.firstFrameMs),
    errors: s.errors,
  };
})()`;

const stats = (page: Page) => page.evaluate<PlayerStats>(STATS);

t.test('headless Chromium plays a camera over WHEP; the reader and the session are released when the page goes away', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: this test needs Debian's chromium (apt-get install chromium; .ci/run and scripts/setup.sh install it)`);
    return;
  }
  const gw = await startStreamingGateway(t, { webrtc: { idleTimeoutMs: 2_000 } });
  await gw.addCamera('lobby', { clip: 'h264-720p-1s' });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20_000 });
  t.teardown(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageLog: string[] = [];
  page.on('console', (m) => pageLog.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));

  /** A screenshot and the player's state in test-artifacts/, for a failure seen only in CI. */
  const snapshot = async (why: string) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, `webrtc-browser-${Date.now()}.png`);
    await page.screenshot({ path: file }).catch(() => {});
    t.comment(`${why}: screenshot in ${file}`);
    t.comment(`player: ${JSON.stringify(await stats(page).catch((e: Error) => e.message))}`);
    t.comment(`peers: ${JSON.stringify(gw.webrtc.list())}`);
    t.comment(`console:\n${pageLog.join('\n')}`);
  };

  // Same origin as the WHEP endpoint, as a wall client served by the gateway would be.
  await page.goto(`${gw.baseUrl}/healthz`);
  const urls = await gw.view('lobby');
  const started = Date.now();
  type Negotiation = { offer: string; answer: string; gatherMs: number; answerMs: number };
  let neg: Negotiation;
  try {
    neg = await page.evaluate<Negotiation>(`(${PLAY})(${JSON.stringify(urls.whep)}, ${JSON.stringify(urls.token)})`);
  } catch (e) {
    await snapshot('negotiation failed');
    throw e;
  }
  t.match(neg.offer, /a=candidate:\S+ \d+ udp \d+ \S+\.local /i, "Chromium's offer carries mDNS host candidates (the case under test)");
  t.comment(`offer gathered after ${neg.gatherMs} ms, answer set after ${neg.answerMs} ms`);

  const first = await waitFor(
    () => stats(page),
    (s) => s.totalVideoFrames > 0 && s.currentTime > 0 && s.width > 0,
    15_000,
    100,
  );
  t.comment(`first frame after ${Date.now() - started} ms (requestVideoFrameCallback: ${first.firstFrameMs} ms); peer timings ${JSON.stringify(gw.webrtc.list()[0]?.timings)}`);
  t.equal(first.connection, 'connected', 'the peer connection is connected');
  t.ok(first.totalVideoFrames > 0, 'the video element decodes frames');
  t.equal(first.width, 1280, 'frames are 1280 wide');
  t.equal(first.height, 720, 'frames are 720 high');

  await sleep(1_500);
  const later = await stats(page);
  t.ok(later.currentTime > first.currentTime + 0.8, `currentTime advances (${first.currentTime.toFixed(2)} → ${later.currentTime.toFixed(2)} s)`);
  t.ok(later.totalVideoFrames > first.totalVideoFrames + 20, `decoded frames grow (${first.totalVideoFrames} → ${later.totalVideoFrames})`);
  t.ok(later.presentedFrames > first.presentedFrames + 20, `presented frames grow (${first.presentedFrames} → ${later.presentedFrames})`);
  t.equal(later.width, 1280, 'still 1280 wide');
  t.same(later.errors, [], 'no player errors');
  t.equal(gw.webrtc.peerCount, 1, 'one WebRTC peer on the gateway');
  t.equal(gw.streams.list()[0]?.readers.webrtc, 1, 'one session, with the browser as its WebRTC reader');
  if (!t.passing()) await snapshot('playback failed');

  t.comment('the page goes away without a DELETE: the gateway drops the peer, then the session');
  const gone = Date.now();
  await page.close();
  const peers = await waitFor(() => gw.webrtc.peerCount, (n) => n === 0, 8_000);
  t.equal(peers, 0, `the peer is dropped after ${Date.now() - gone} ms`);
  t.equal(gw.streams.stats().readers, 0, 'its reader is released');
  const left = gw.logs.find((l) => l.includes('WebRTC viewer left'));
  t.ok(left, 'the gateway logged the viewer leaving');
  if (left) t.comment(`reason: ${(JSON.parse(left) as { reason?: string }).reason}`);
  t.equal(await waitFor(() => gw.streams.list().length, (n) => n === 0, 6_000), 0, `no session left after ${Date.now() - gone} ms`);
  t.same(await waitFor(() => gw.ffmpegPids(), (p) => p.length === 0, 4_000), [], 'no ffmpeg left');
});
