/**
 * One camera full-window: `popout.html?camera=<cameraId>&profile=main|sub` (main by default), opened
 * from the console or any page that links to it. A stats overlay, refreshed every second, says how it
 * plays: transport, codec, resolution, bitrate and latency ("s" hides it; double-click for full screen).
 */
import { api, ApiError, can } from '../lib/api.js';
import { h, toast } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { ptzPad, restPtz } from '../lib/ptz-pad.js';
import { onPageLeave, startPage } from '../lib/shell.js';
import { stateText, StreamPlayer, transportsParam, type PlayerState, type PlayerStats } from '../lib/stream-player.js';
import '../styles/app.css';
import '../styles/popout.css';

addStrings({
  'popout.title': ['Camera', '单路播放'],
  'popout.noCamera': ['No camera given: open popout.html?camera=<id>', '未指定摄像机：请打开 popout.html?camera=<编号>'],
  'popout.badProfile': ['profile must be main or sub, not "{profile}"', 'profile 只能是 main 或 sub，而不是“{profile}”'],
  'popout.notFound': ['Camera "{id}" does not exist or is not in your departments.', '摄像机“{id}”不存在或不在您的管辖范围内。'],
  'popout.transport': ['Transport', '传输'],
  'popout.codec': ['Codec', '编码'],
  'popout.resolution': ['Resolution', '分辨率'],
  'popout.bitrate': ['Bitrate', '码率'],
  'popout.latency': ['Latency', '延迟'],
  'popout.profile': ['Stream', '码流'],
  'popout.main': ['Main', '主码流'],
  'popout.sub': ['Sub', '子码流'],
  'popout.hideStats': ['Hide stats (s)', '隐藏统计（s）'],
  'popout.showStats': ['Stats (s)', '统计（s）'],
});

interface SourceInfo {
  id: string;
  name: string;
  departmentName: string;
  subUrl: string | null;
}

const DASH = '–';

async function main() {
  const { main } = await startPage({ title: 'popout.title', page: 'popout', chrome: false });
  const params = new URLSearchParams(location.search);
  const cameraId = params.get('camera');
  const profileParam = params.get('profile') ?? 'main';
  const transports = transportsParam(params);
  const message = (text: string) => main.replaceChildren(h('p', { class: 'popout-message' }, text));
  if (!cameraId) return message(t('popout.noCamera'));
  if (profileParam !== 'main' && profileParam !== 'sub') return message(t('popout.badProfile', { profile: profileParam }));
  let profile: 'main' | 'sub' = profileParam;

  let source: SourceInfo | null = null;
  try {
    source = await api<SourceInfo>('GET', `/api/sources/${encodeURIComponent(cameraId)}`);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 403)) return message(t('popout.notFound', { id: cameraId }));
    // Without the registry's answer the stream may still play: show the id for a name.
  }
  document.title = `${source?.name ?? cameraId} · wallgate`;

  const stat = (key: string) => h('dd', { dataset: { stat: key } }, DASH);
  const stats = {
    transport: stat('transport'),
    codec: stat('codec'),
    resolution: stat('resolution'),
    bitrate: stat('bitrate'),
    latency: stat('latency'),
    profile: stat('profile'),
  };
  const row = (label: string, el: HTMLElement) => [h('dt', null, t(label)), el];
  const profileButtons = source?.subUrl
    ? (['main', 'sub'] as const).map((p) => h('button', { class: 'link', dataset: { profile: p }, onclick: () => play(p) }, t(`popout.${p}`)))
    : [];
  const overlay = h(
    'div',
    { class: 'popout-stats', dataset: { role: 'stats' } },
    h('div', { class: 'popout-name' }, h('strong', null, source?.name ?? cameraId), source ? h('span', { class: 'muted' }, source.departmentName) : null),
    h(
      'dl',
      null,
      row('popout.transport', stats.transport),
      row('popout.codec', stats.codec),
      row('popout.resolution', stats.resolution),
      row('popout.bitrate', stats.bitrate),
      row('popout.latency', stats.latency),
      row('popout.profile', stats.profile),
    ),
    profileButtons.length ? h('div', { class: 'popout-profiles' }, profileButtons) : null,
  );
  const badge = h('div', { class: 'popout-badge', role: 'status' });
  const toggle = h('button', { class: 'popout-toggle' }, t('popout.hideStats'));
  const stage = h('div', { class: 'popout-stage', dataset: { state: 'starting' } }, badge);
  main.replaceChildren(stage, overlay, toggle);
  // Steering from here too (GB/T 28181 channels only: the pad stays hidden for any other camera).
  const pad = can('ptz:control') ? ptzPad(cameraId, restPtz, (text, kind) => toast(text, kind)) : null;
  if (pad) main.append(h('div', { class: 'popout-ptz' }, pad.el));

  const showStats = (shown: boolean) => {
    overlay.hidden = !shown;
    toggle.textContent = shown ? t('popout.hideStats') : t('popout.showStats');
  };
  toggle.addEventListener('click', () => showStats(overlay.hidden));
  document.addEventListener('keydown', (e) => {
    if (e.key === 's' && !e.ctrlKey && !e.metaKey && !e.altKey) showStats(overlay.hidden);
  });
  stage.addEventListener('dblclick', () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void stage.requestFullscreen().catch(() => {});
  });

  let player: StreamPlayer | null = null;
  let countdown: ReturnType<typeof setInterval> | undefined;
  const showState = (s: PlayerState) => {
    clearInterval(countdown);
    stage.dataset.state = s.kind;
    const text = () => stateText(s);
    badge.textContent = text();
    if (s.kind === 'retrying') countdown = setInterval(() => (badge.textContent = text()), 1_000);
  };

  function play(p: 'main' | 'sub') {
    profile = p;
    player?.destroy();
    const url = new URL(location.href);
    url.searchParams.set('profile', p);
    history.replaceState(null, '', url);
    for (const b of profileButtons) b.classList.toggle('current', b.dataset.profile === p);
    const next = new StreamPlayer({ cameraId: cameraId!, profile: p, ...(transports ? { transports } : {}), onState: showState });
    player = next;
    stage.prepend(next.video);
    next.start();
  }

  const render = (s: PlayerStats) => {
    stats.transport.textContent = s.transport ?? DASH;
    stats.codec.textContent = s.codec ?? DASH;
    stats.resolution.textContent = s.width && s.height ? `${s.width}×${s.height}` : DASH;
    stats.bitrate.textContent = s.bitrateKbps !== null ? `${s.bitrateKbps} kbit/s` : DASH;
    stats.latency.textContent = s.latencyMs !== null ? `${s.latencyMs} ms` : DASH;
    stats.profile.textContent = t(`popout.${profile}`);
  };
  // The stats keep one sample in hand (bitrate is a difference of two): one request at a time.
  let sampling = false;
  const sampler = setInterval(() => {
    const p = player;
    if (!p || sampling || overlay.hidden) return;
    sampling = true;
    p.stats()
      .then((s) => {
        if (p === player) render(s);
      })
      .catch(() => {})
      .finally(() => (sampling = false));
  }, 1_000);

  onPageLeave(() => {
    pad?.destroy();
    clearInterval(sampler);
    clearInterval(countdown);
    player?.destroy();
    player = null;
  });
  play(profile);
}

void main();
