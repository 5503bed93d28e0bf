import { buildGateway } from './app.js';
import { loadConfig } from './config/load.js';
import { ConfigError } from './errors.js';

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wallgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const gateway = await buildGateway(config);
  const log = gateway.http.log;
  if (gateway.bootstrapAdmin) {
    // Printed once, to the terminal only: the log may be shipped elsewhere.
    process.stderr.write(
      `\n  First start: created admin user "${gateway.bootstrapAdmin.username}" with password ${gateway.bootstrapAdmin.password}\n` +
        `  It is shown only now. Sign in and change it (POST /api/auth/password).\n\n`,
    );
  }
  const address = await gateway.http.listen({ host: config.server.host, port: config.server.port });
  log.info({ address }, 'wallgate listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    // In-flight requests get the grace period; then whatever is left is cut so the process still exits in time.
    const force = setTimeout(() => gateway.http.server.closeAllConnections(), config.server.shutdownGraceMs);
    force.unref();
    try {
      await gateway.close();
      log.info('stopped');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`wallgate: failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
