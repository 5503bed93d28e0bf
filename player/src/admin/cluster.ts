/**
 * The cluster: every live node with its load and the cameras it pulls, refreshed every 2 s. In
 * single-node mode, the one node and its own pulls.
 */
import { api, can } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { addStrings, formatNumber, formatTime, t } from '../lib/i18n.js';
import { duration, errorText, isAbort, tableHead, type Section } from './common.js';

addStrings({
  'cluster.title': ['Cluster', '集群'],
  'cluster.intro.cluster': ['{n} nodes share the cameras; each camera is pulled by one node. Refreshed every 2 seconds.', '{n} 个节点分担摄像机，每路摄像机只由一个节点拉流。每 2 秒刷新。'],
  'cluster.intro.single': ['A single gateway (cluster mode is off). Refreshed every 2 seconds.', '单节点网关（未启用集群模式）。每 2 秒刷新。'],
  'cluster.thisNode': ['this node', '本节点'],
  'cluster.started': ['Started {at}', '启动于 {at}'],
  'cluster.heartbeat': ['last heartbeat {s} s ago', '上次心跳 {s} 秒前'],
  'cluster.load.sessions': ['Pulls', '拉流数'],
  'cluster.load.viewers': ['Viewers', '观看数'],
  'cluster.load.out': ['Out', '出流量'],
  'cluster.load.cpu': ['CPU', 'CPU'],
  'cluster.mbps': ['{n} Mbit/s', '{n} Mbit/s'],
  'cluster.col.camera': ['Camera', '摄像机'],
  'cluster.col.since': ['Pulled for', '已拉流'],
  'cluster.col.token': ['Fencing token', '防护令牌'],
  'cluster.noCameras': ['No camera pulled.', '未拉取任何摄像机。'],
  'cluster.elsewhere': ['and {n} outside your departments', '另有 {n} 路不在您的管辖范围内'],
});

interface PulledCamera {
  cameraId: string;
  name: string;
  since: string;
  token: number | null;
}
interface ClusterNodeView {
  id: string;
  url: string;
  startedAt: string;
  heartbeatAt: string;
  load: { sessions: number; viewers: number; bytesOutPerSec: number; cpuPct: number };
  cameras: PulledCamera[];
  camerasElsewhere: number;
}
interface ClusterView {
  mode: 'single' | 'cluster';
  nodeId: string;
  nodes: ClusterNodeView[];
}

const REFRESH_MS = 2_000;

function loadFigure(label: string, value: string, key: string) {
  return h('div', { class: 'cluster-figure', dataset: { figure: key } }, h('span', { class: 'muted small' }, label), h('span', { class: 'num' }, value));
}

function nodeCard(view: ClusterView, n: ClusterNodeView, now: number): HTMLElement {
  const mbps = (n.load.bytesOutPerSec * 8) / 1e6;
  const heartbeatAge = Math.max(0, Math.round((now - Date.parse(n.heartbeatAt)) / 1000));
  const cameras = n.cameras.length
    ? h(
        'table',
        { class: 'data cluster-cameras' },
        tableHead('cluster', ['camera', 'since', 'token']),
        h(
          'tbody',
          null,
          n.cameras.map((c) =>
            h(
              'tr',
              { dataset: { camera: c.cameraId } },
              h('td', null, h('div', { class: 'name' }, c.name || c.cameraId), h('div', { class: 'mono muted' }, c.cameraId)),
              h('td', { class: 'num', title: formatTime(c.since) }, duration(now - Date.parse(c.since))),
              h('td', { class: 'num mono' }, c.token === null ? '—' : String(c.token)),
            ),
          ),
        ),
      )
    : h('p', { class: 'muted empty' }, t('cluster.noCameras'));
  return h(
    'article',
    { class: 'cluster-node', dataset: { node: n.id } },
    h(
      'header',
      null,
      h('h2', null, n.id, n.id === view.nodeId ? h('span', { class: 'pill' }, t('cluster.thisNode')) : null),
      n.url ? h('div', { class: 'mono muted' }, n.url) : null,
      h('div', { class: 'muted small' }, t('cluster.started', { at: formatTime(n.startedAt) }), ' · ', t('cluster.heartbeat', { s: heartbeatAge })),
    ),
    h(
      'div',
      { class: 'cluster-load' },
      loadFigure(t('cluster.load.sessions'), formatNumber(n.load.sessions), 'sessions'),
      loadFigure(t('cluster.load.viewers'), formatNumber(n.load.viewers), 'viewers'),
      loadFigure(t('cluster.load.out'), t('cluster.mbps', { n: formatNumber(Math.round(mbps * 10) / 10) }), 'out'),
      loadFigure(t('cluster.load.cpu'), `${formatNumber(Math.round(n.load.cpuPct))} %`, 'cpu'),
    ),
    cameras,
    n.camerasElsewhere ? h('p', { class: 'muted small' }, t('cluster.elsewhere', { n: n.camerasElsewhere })) : null,
  );
}

export const clusterSection: Section = {
  id: 'cluster',
  label: 'cluster.title',
  allowed: () => can('cluster:read'),
  mount(el) {
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const intro = h('p', { class: 'muted' });
    const nodes = h('div', { class: 'cluster-nodes' });
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let controller: AbortController | null = null;

    const poll = async () => {
      controller = new AbortController();
      try {
        const view = await api<ClusterView>('GET', '/api/cluster', { signal: controller.signal });
        if (!alive) return;
        intro.textContent = view.mode === 'cluster' ? t('cluster.intro.cluster', { n: view.nodes.length }) : t('cluster.intro.single');
        const now = Date.now();
        nodes.replaceChildren(...view.nodes.map((n) => nodeCard(view, n, now)));
        alert.textContent = '';
      } catch (err) {
        if (isAbort(err) || !alive) return;
        alert.textContent = errorText(err);
      }
      if (alive) timer = setTimeout(() => void poll(), REFRESH_MS);
    };

    el.append(intro, alert, nodes);
    void poll();
    return () => {
      alive = false;
      clearTimeout(timer);
      controller?.abort();
    };
  },
};
