/**
 * Sets a new random password for a user, from the machine that holds the data (for a lost bootstrap
 * password): `npm run reset-password -- admin`. Uses the same configuration as the gateway.
 */
import { buildGateway } from '../gateway/src/app.js';
import { loadConfig } from '../gateway/src/config/load.js';

const username = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (!username) {
  process.stderr.write('usage: npm run reset-password -- <username> [--config FILE]\n');
  process.exit(2);
}
const config = loadConfig();
config.log.level = 'warn';
config.demo.enabled = false;
// The running gateway holds the SIP port; this one only writes a password.
config.gb28181.enabled = false;
const gateway = await buildGateway(config);
try {
  const password = await gateway.users.resetPassword(username);
  process.stderr.write(`New password for "${username}": ${password}\nIt is shown only now; older sign-ins of this user are ended.\n`);
} catch (err) {
  process.stderr.write(`reset-password: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await gateway.close();
}
