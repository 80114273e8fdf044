// Who may talk to the server: same-origin only (a web page must not queue work on the user's
// machine), a bearer token when the server is reachable beyond loopback. Pure functions over
// header values, so the HTTP middleware and the WebSocket upgrade share one decision.
import crypto from 'node:crypto';
import net from 'node:net';

export const TOKEN_COOKIE = 'rdflow_token';

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Refuses a configuration that would expose the server without a token: any non-loopback bind
 * address needs one. Returns the error message, or undefined when the configuration is safe.
 */
export function listenProblem(host: string, token: string | undefined): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  if (token && token.length >= 16) return undefined;
  if (token) return `The auth token must be at least 16 characters to listen on ${host}.`;
  return (
    `Refusing to listen on ${host} without an auth token: anyone who can reach it could run prompts ` +
    'and read outputs. Pass --auth-token TOKEN or set RDFLOW_AUTH_TOKEN, or bind 127.0.0.1.'
  );
}

/** host[:port] of an Origin header, lower-cased; undefined when it is not a URL (e.g. "null"). */
function originHost(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.host.toLowerCase();
  } catch {
    return undefined;
  }
}

function withDefaultPort(host: string, port: string): string {
  return /:\d+$/.test(host) && !host.endsWith(']') ? host : `${host}:${port}`;
}

/**
 * A request is cross-site when it carries an Origin whose host differs from the Host it was sent
 * to (browsers always send Origin on cross-site fetches and WebSocket upgrades). No Origin: a
 * non-browser client (curl, Python), allowed.
 */
export function isCrossOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return false;
  if (!host) return true;
  const o = originHost(origin);
  if (o === undefined) return true;
  const scheme = origin.toLowerCase().startsWith('https:') ? '443' : '80';
  return withDefaultPort(o, scheme) !== withDefaultPort(host.toLowerCase(), scheme);
}

/**
 * DNS rebinding defence: a loopback-only server without a token answers only requests addressed
 * to a loopback name, so evil.example resolving to 127.0.0.1 is refused even though its Origin
 * and Host agree.
 */
export function isForeignHostForLoopback(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return !isLoopbackHost(name);
}

export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export interface Credentials {
  authorization?: string;
  cookie?: string;
  /** The request URL (path and query), for `?token=`. */
  url?: string;
}

/** The token a request presents: `Authorization: Bearer`, `?token=`, or the cookie set by either. */
export function presentedToken(c: Credentials): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(c.authorization ?? '');
  if (m) return m[1].trim();
  if (c.url) {
    const q = new URL(c.url, 'http://x').searchParams.get('token');
    if (q !== null) return q;
  }
  for (const part of (c.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === TOKEN_COOKIE) {
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export type AccessDecision =
  { ok: true; setCookie?: boolean } | { ok: false; status: 401 | 403; message: string };

export interface AccessPolicy {
  token?: string;
  /** The server listens on loopback only. */
  loopback: boolean;
}

/** One decision for an HTTP request or WebSocket upgrade. */
export function checkAccess(
  policy: AccessPolicy,
  headers: { origin?: string; host?: string } & Credentials,
): AccessDecision {
  if (isCrossOrigin(headers.origin, headers.host)) {
    return { ok: false, status: 403, message: 'Cross-origin request refused (Origin does not match Host).' };
  }
  if (!policy.token) {
    if (policy.loopback && isForeignHostForLoopback(headers.host)) {
      return {
        ok: false,
        status: 403,
        message: 'Request for a non-loopback Host refused by a loopback server.',
      };
    }
    return { ok: true };
  }
  const given = presentedToken(headers);
  if (!tokenMatches(given, policy.token)) {
    return { ok: false, status: 401, message: 'Missing or wrong auth token (Authorization: Bearer TOKEN).' };
  }
  // A browser that opened /?token=... keeps the token in a same-site cookie for its API calls.
  const viaQuery = headers.url !== undefined && new URL(headers.url, 'http://x').searchParams.has('token');
  return { ok: true, setCookie: viaQuery };
}

/**
 * The only requests served without the token when one is configured: GET/HEAD of the editor's
 * page and its bundled assets (`/`, `/index.html`, `/assets/...`), which hold no data and no
 * secret (they are the repository's own client code). Everything else — every API path, at any
 * letter case, and any path nobody routes — is checked before routing. Compared case-sensitively
 * on the raw path, so `/Assets/../queue` or `/assets/%2e%2e/queue` are not public.
 */
export function isPublicPath(method: string, rawPath: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (rawPath === '/' || rawPath === '/index.html') return true;
  if (!rawPath.startsWith('/assets/')) return false;
  if (rawPath.includes('\\') || /%2e|%2f|%5c|%00/i.test(rawPath)) return false;
  return !rawPath.split('/').some((seg) => seg === '..' || seg === '.');
}
