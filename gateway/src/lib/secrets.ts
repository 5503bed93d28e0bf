import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

export interface Secrets {
  tokenKey: Buffer;
  credentialKey: Buffer;
}

/**
 * Keys come from configuration (normally WALLGATE_SECRETS_* variables) or from a file that the first
 * start generates with mode 0600. Losing the file means losing every stored camera password.
 */
export function loadSecrets(file: string, fromConfig: { tokenKey: string; credentialKey: string }): { secrets: Secrets; generated: boolean } {
  let stored: Partial<Record<keyof Secrets, string>> = {};
  let generated = false;
  const needFile = !fromConfig.tokenKey || !fromConfig.credentialKey;
  if (needFile) {
    if (existsSync(file)) {
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077) chmodSync(file, 0o600);
      stored = JSON.parse(readFileSync(file, 'utf8'));
    }
    if (!stored.tokenKey || !stored.credentialKey) {
      stored = {
        tokenKey: stored.tokenKey ?? randomBytes(32).toString('base64'),
        credentialKey: stored.credentialKey ?? randomBytes(32).toString('base64'),
      };
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
      chmodSync(file, 0o600);
      generated = true;
    }
  }
  return {
    secrets: {
      tokenKey: Buffer.from(fromConfig.tokenKey || stored.tokenKey!, 'base64'),
      credentialKey: Buffer.from(fromConfig.credentialKey || stored.credentialKey!, 'base64'),
    },
    generated,
  };
}
