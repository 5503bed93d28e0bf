import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { GatewayError, reasoned } from '../errors.js';
import { allows, type Permission } from './roles.js';
import type { Principal, UsersService } from './users.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The bearer token of a request, from the Authorization header only (never a query string, which ends up in logs). */
function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(h);
  return m ? m[1]! : null;
}

const GUARD = Symbol('guard');

/** The permission a route's guard requires ('' for any signed-in user), or undefined for another hook: the API's document tells from it who may call a route. */
export function guardOf(hook: unknown): Permission | '' | undefined {
  return typeof hook === 'function' ? (hook as { [GUARD]?: Permission | '' })[GUARD] : undefined;
}

/**
 * Route guards. Every API route but login and health names a permission; nothing is open by default,
 * because the guard is added per route and a test walks every registered route to prove it.
 */
export function guards(users: UsersService) {
  const authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const token = bearer(req);
    const principal = token ? await users.authenticate(token, req.ip) : null;
    if (!principal) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'sign in first: a valid bearer token is required');
    req.principal = principal;
    return principal;
  };
  const require = (permission: Permission): onRequestHookHandler =>
    Object.assign(
      async function requirePermission(req: FastifyRequest, _reply: FastifyReply) {
        const principal = await authenticate(req);
        if (!allows(principal.roles, permission)) throw reasoned('GW_ERR_FORBIDDEN', 'permission', { permission }, `your roles do not allow ${permission}`);
      },
      { [GUARD]: permission },
    );
  const signedIn: onRequestHookHandler = Object.assign(
    async function signedIn(req: FastifyRequest) {
      await authenticate(req);
    },
    { [GUARD]: '' as const },
  );
  return { require, signedIn };
}

export type Guards = ReturnType<typeof guards>;
