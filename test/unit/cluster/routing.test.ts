import t from 'tap';
import type { NodeInfo } from '../../../gateway/src/cluster/node.js';
import { forwardUrl, hopsOf, place } from '../../../gateway/src/cluster/routing.js';

const node = (id: string, sessions = 0, bytesOutPerSec = 0): NodeInfo => ({
  id,
  url: `http://${id}:8080`,
  startedAt: 0,
  heartbeatAt: 0,
  load: { sessions, viewers: 0, bytesOutPerSec, cpuPct: 0 },
});
const cameras = Array.from({ length: 3_000 }, (_, i) => `cam${i}`);
const tally = (nodes: NodeInfo[]) => {
  const out: Record<string, number> = {};
  for (const c of cameras) out[place(c, nodes)!.id] = (out[place(c, nodes)!.id] ?? 0) + 1;
  return out;
};

t.test('every node places a camera on the same node, whatever order it lists the nodes in', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  for (const c of cameras.slice(0, 200)) t.equal(place(c, nodes)!.id, place(c, [...nodes].reverse())!.id);
  t.equal(place('cam1', []), null, 'no nodes, no place');
});

t.test('equal nodes share the cameras about evenly; a loaded node gets fewer', async (t) => {
  const even = tally([node('a'), node('b'), node('c')]);
  for (const id of ['a', 'b', 'c']) t.ok(even[id]! > 850 && even[id]! < 1_150, `node ${id}: ${even[id]} of 3000`);
  // Node a pulls 9 cameras: a tenth of the weight of an idle node.
  const loaded = tally([node('a', 9), node('b'), node('c')]);
  t.ok(loaded.a! < 250, `the loaded node gets few new cameras (${loaded.a})`);
  const byBytes = tally([node('a', 0, 4_500_000), node('b'), node('c')]);
  t.ok(byBytes.a! < 250, `bytes out count as load too (${byBytes.a})`);
});

t.test('a node that leaves moves only its own cameras', async (t) => {
  const three = [node('a'), node('b'), node('c')];
  const two = [node('a'), node('c')];
  let moved = 0;
  for (const c of cameras) {
    const before = place(c, three)!.id;
    const after = place(c, two)!.id;
    if (before !== 'b') t.equal(after, before, `${c} stays on ${before}`);
    else moved++;
  }
  t.ok(moved > 0);
});

t.test('a forwarded URL keeps the path and query and counts the hop', async (t) => {
  t.equal(forwardUrl('http://b:8080', '/streams/c1/main/x.y.z/index.m3u8', 0), 'http://b:8080/streams/c1/main/x.y.z/index.m3u8?wgr=1');
  t.equal(forwardUrl('http://b:8080', '/whep/c1?profile=sub&wgr=1', 1), 'http://b:8080/whep/c1?profile=sub&wgr=2');
  t.equal(hopsOf('/whep/c1?profile=sub&wgr=1'), 1);
  t.equal(hopsOf('/whep/c1?profile=sub'), 0);
  t.equal(hopsOf('/whep/c1?xwgr=5'), 0, 'only its own parameter counts');
});
