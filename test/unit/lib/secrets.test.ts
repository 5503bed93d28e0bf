import { statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadSecrets } from '../../../gateway/src/lib/secrets.js';
import { tempDir } from '../../helpers/gateway.js';

t.test('a first start generates keys into a 0600 file and later starts reuse them', async (t) => {
  const file = join(tempDir(t), 'sub', 'secrets.json');
  const first = loadSecrets(file, { tokenKey: '', credentialKey: '' });
  t.equal(first.generated, true);
  t.equal(first.secrets.tokenKey.length, 32);
  t.equal(statSync(file).mode & 0o777, 0o600);
  const second = loadSecrets(file, { tokenKey: '', credentialKey: '' });
  t.equal(second.generated, false);
  t.ok(second.secrets.credentialKey.equals(first.secrets.credentialKey));
  chmodSync(file, 0o644);
  loadSecrets(file, { tokenKey: '', credentialKey: '' });
  t.equal(statSync(file).mode & 0o777, 0o600, 'loose permissions are tightened');
});

t.test('keys from configuration win and need no file', async (t) => {
  const file = join(tempDir(t), 'never.json');
  const key = Buffer.alloc(32, 3).toString('base64');
  const s = loadSecrets(file, { tokenKey: key, credentialKey: key });
  t.equal(s.generated, false);
  t.ok(s.secrets.tokenKey.equals(Buffer.alloc(32, 3)));
  t.throws(() => statSync(file));
  writeFileSync(file, '{}');
});
