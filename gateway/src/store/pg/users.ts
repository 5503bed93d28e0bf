/** Users and the deny list of signed-out sessions on PostgreSQL. */
import { StoreConflict, type RevokedSession, type SessionRepo, type UserRecord, type UserRepo } from '../types.js';
import type { PgDb } from './db.js';
import { toUser, type Row } from '../rows.js';


export class PgUsers implements UserRepo {
  constructor(private readonly db: PgDb) {}

  async get(id: string) {
    const r = await this.db.one<Row>(`SELECT * FROM users WHERE id = $1`, [id]);
    return r ? toUser(r) : null;
  }
  async byUsername(username: string) {
    const r = await this.db.one<Row>(`SELECT * FROM users WHERE username = $1`, [username]);
    return r ? toUser(r) : null;
  }
  async list() {
    return (await this.db.query<Row>(`SELECT * FROM users ORDER BY username`)).map(toUser);
  }
  async count() {
    return (await this.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM users`))!.n;
  }
  async create(user: UserRecord) {
    try {
      await this.db.exec(
        `INSERT INTO users (id, username, display_name, password_hash, roles, scopes, disabled, token_version, tokens_revoked_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [user.id, user.username, user.displayName, user.passwordHash, JSON.stringify(user.roles), JSON.stringify(user.scopes), user.disabled,
          user.tokenVersion, user.tokensRevokedAt, user.createdAt, user.updatedAt],
      );
    } catch (err) {
      if (err instanceof StoreConflict) throw new StoreConflict(`user ${user.username} exists`);
      throw err;
    }
    return user;
  }
  async update(user: UserRecord) {
    await this.db.exec(
      `UPDATE users SET display_name = $2, password_hash = $3, roles = $4, scopes = $5, disabled = $6, token_version = $7, updated_at = $8 WHERE id = $1`,
      [user.id, user.displayName, user.passwordHash, JSON.stringify(user.roles), JSON.stringify(user.scopes), user.disabled, user.tokenVersion, user.updatedAt],
    );
    return user;
  }
  async revokeTokens(id: string, issuedUpTo: number) {
    return (await this.db.exec(`UPDATE users SET tokens_revoked_at = GREATEST(tokens_revoked_at, $1) WHERE id = $2`, [issuedUpTo, id])) > 0;
  }
}

export class PgSessions implements SessionRepo {
  constructor(private readonly db: PgDb) {}

  async revoke(session: RevokedSession, now: number) {
    await this.db.tx(async (tx) => {
      await tx.exec(`DELETE FROM revoked_sessions WHERE expires_at <= $1`, [now]);
      await tx.exec(
        `INSERT INTO revoked_sessions (session_id, user_id, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (session_id) DO UPDATE SET expires_at = GREATEST(revoked_sessions.expires_at, EXCLUDED.expires_at)`,
        [session.sessionId, session.userId, session.expiresAt],
      );
    });
  }
  async isRevoked(sessionId: string) {
    return (await this.db.one(`SELECT 1 FROM revoked_sessions WHERE session_id = $1`, [sessionId])) !== null;
  }
  async count() {
    return (await this.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM revoked_sessions`))!.n;
  }
}
