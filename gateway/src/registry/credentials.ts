import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { SealedCredential } from '../store/types.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals camera passwords with AES-256-GCM before they reach the store. The fingerprint (a keyed
 * HMAC of user name and password) is the additional authenticated data, so a sealed password
 * cannot be moved onto another credential row, and equal credentials are found without decrypting.
 */
export class CredentialSealer {
  private readonly encKey: Buffer;
  private readonly macKey: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length < 32) throw new Error('credential key must be at least 32 bytes');
    this.encKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'wallgate credential encryption', 32));
    this.macKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'wallgate credential fingerprint', 32));
  }

  fingerprint(username: string, password: string | null): Buffer {
    // Length-prefixed, so no two different (user name, password) pairs feed the HMAC the same bytes.
    const user = Buffer.from(username, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(user.length);
    return createHmac('sha256', this.macKey)
      .update(length)
      .update(user)
      .update(password === null ? '\u0000' : `\u0001${password}`)
      .digest();
  }

  seal(username: string, password: string | null): SealedCredential {
    const fingerprint = this.fingerprint(username, password);
    if (password === null) return { fingerprint, username, sealedPassword: null };
    return { fingerprint, username, sealedPassword: this.encrypt(password, fingerprint) };
  }

  open(sealed: Buffer, fingerprint: Buffer): string {
    return this.decrypt(sealed, fingerprint);
  }

  /**
   * A secret that has no user name to fingerprint (a GB/T 28181 device's digest password), bound to
   * what it belongs to (`owner`, e.g. "gb-device:<id>"): sealed for one owner, it does not open for another.
   */
  sealSecret(owner: string, secret: string): Buffer {
    return this.encrypt(secret, Buffer.from(`secret\u0000${owner}`, 'utf8'));
  }

  openSecret(owner: string, sealed: Buffer): string {
    return this.decrypt(sealed, Buffer.from(`secret\u0000${owner}`, 'utf8'));
  }

  private encrypt(plain: string, aad: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.encKey, iv);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]);
  }

  private decrypt(sealed: Buffer, aad: Buffer): string {
    if (sealed[0] !== VERSION) throw new Error('unknown sealed credential version');
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.encKey, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}
