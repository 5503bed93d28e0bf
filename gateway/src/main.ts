import { buildGateway, type Gateway } from './app.js';
import { loadConfig } from './config/load.js';
import { ConfigError } from './errors.js';
import { Lifecycle } from './lib/lifecycle.js';

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
  // The keys are in the config now. Children that inherit the environment (the snapshot decoders fluent-ffmpeg spawns,
  // which parse what cameras send) must not find them there; the pulls' ffmpeg gets an environment of its own anyway.
  for (const name of Object.keys(process.env)) if (name.startsWith('WALLGATE_SECRETS_')) delete process.env[name];

  // The signals are handled from the first moment: a SIGTERM during the start closes what it opened so far.
  const life = new Lifecycle();
  let gateway: Gateway | null = null;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const log = gateway?.http.log;
    if (log) log.info({ signal }, 'shutting down: finishing in-flight requests');
    else process.stderr.write(`wallgate: ${signal} during the start: shutting down\n`);
    // A step that hangs must not keep the process forever: in-flight requests get their grace, the rest a little more.
    setTimeout(() => {
      process.stderr.write('wallgate: shutdown did not finish in time\n');
      process.exit(1);
    }, config.server.shutdownGraceMs + 10_000).unref();
    try {
      await life.close();
      if (log) log.info('stopped');
      process.exit(0);
    } catch (err) {
      if (log) log.error({ err }, 'error during shutdown');
      else process.stderr.write(`wallgate: error during shutdown: ${(err as Error).message}\n`);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  try {
    gateway = await buildGateway(config, {
      lifecycle: life,
      // Printed once, to stderr only: the log (stdout) may be shipped elsewhere.
      announceAdmin: (admin) =>
        process.stderr.write(
          `\n  First start: created admin user "${admin.username}" with password ${admin.password}\n` +
            `  It is shown only now. Sign in and change it (POST /api/auth/password).\n\n`,
        ),
    });
    life.checkpoint('listen');
    const address = await gateway.http.listen({ host: config.server.host, port: config.server.port });
    gateway.http.log.info({ address }, 'wallgate listening');
  } catch (err) {
    // A start the signal overtook: stop() finishes the shutdown and exits.
    if (stopping) return;
    await life.close().catch(() => undefined);
    throw err;
  }
}

main().catch((err) => {
  process.stderr.write(`wallgate: failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
