import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startGateway, tempDir } from '../../helpers/gateway.js';
import { waitFor } from '../../helpers/streams.js';

/**
 * Registration and keepalive with sipp (Debian's sip-tester), a SIP client that is not ours: its
 * digest (qop auth, over the uri it picks), its Via and framing. The scenario is
 * test/fixtures/sipp/gb-register-keepalive.xml; sipp exits 0 only when every step got its answer.
 */
const FIXTURES = fileURLToPath(new URL('../../fixtures/sipp/', import.meta.url));
const DEVICE = '34020000001320000007';
const PASSWORD = 'sipp-device-secret';

function sipp(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sipp', args, { cwd, timeout: 30_000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number | string }).code as number | null) ?? null : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`sipp over ${transport}: REGISTER with digest and two keepalives, all answered 200; the device is online`, async (t) => {
    const gw = await startGateway(t);
    const added = await gw.api('POST', '/api/gb28181/devices', { token: gw.adminToken, body: { id: DEVICE, name: 'sipp device', departmentId: 'root', password: PASSWORD } });
    t.equal(added.status, 201);
    const port = transport === 'udp' ? gw.gb28181!.ports.udpPort : gw.gb28181!.ports.tcpPort;
    const dir = tempDir(t, 'wallgate-sipp-');
    const cfg = gw.config.gb28181;
    const run = await sipp(
      [
        `127.0.0.1:${port}`,
        '-sf', join(FIXTURES, 'gb-register-keepalive.xml'),
        '-oocsf', join(FIXTURES, 'gb-answer-200.xml'),
        '-t', transport === 'udp' ? 'u1' : 't1',
        '-i', '127.0.0.1',
        '-m', '1',
        '-au', DEVICE,
        '-ap', PASSWORD,
        '-key', 'device', DEVICE,
        '-key', 'server', cfg.id,
        '-key', 'domain', cfg.domain,
        '-timeout', '20s',
        '-timeout_error',
        '-nostdin',
        '-trace_err',
        '-error_file', join(dir, 'errors.log'),
      ],
      dir,
    );
    const errors = await readFile(join(dir, 'errors.log'), 'utf8').catch(() => '');
    t.equal(run.code, 0, `sipp completed the scenario${run.code === 0 ? '' : `: ${run.stderr.slice(-2_000)} ${errors.slice(-3_000)}`}`);
    t.ok(gw.gb28181!.isOnline(DEVICE), 'registered');
    const shown = await waitFor(
      async () => (await gw.api('GET', `/api/gb28181/devices/${DEVICE}`, { token: gw.adminToken })).json,
      (d) => d.online && d.lastKeepaliveAt !== null && d.transport === transport,
      3_000,
      50,
      'the device shown online with its keepalive',
    );
    t.equal(shown.address, '127.0.0.1');
    t.equal(gw.gb28181!.registrations, 1);
    t.notOk(gw.logs.join('').includes(PASSWORD), 'the password is never logged');
  });
}
