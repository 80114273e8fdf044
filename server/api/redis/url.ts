// Redis URLs for `--queue redis://[:password@]host:port[/db]` (and rediss:// for TLS). The password
// travels only in the options handed to ioredis: everything meant for people (logs, errors,
// /system_stats) uses `redacted`, and an error about a URL never quotes the URL itself.
import type { RedisOptions } from 'ioredis';

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** The URL with the password replaced by `***`: safe for logs and /system_stats. */
  redacted: string;
}

export class RedisUrlError extends Error {
  override name = 'RedisUrlError';
}

const USAGE = 'expected redis://[[user]:password@]host[:port][/db] or rediss://…';

/** Hides the credentials of any string that looks like a URL, parsable or not. */
export function redactRedisUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, (_m, scheme: string) => `${scheme}***@`);
}

export function parseRedisUrl(raw: string): RedisTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // URL's own message quotes the input, password and all.
    throw new RedisUrlError(`Invalid Redis URL: not a URL (${USAGE}).`);
  }
  const shown = redactRedisUrl(raw);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new RedisUrlError(`Invalid Redis URL ${shown}: the scheme must be redis: or rediss: (${USAGE}).`);
  }
  if (url.hostname === '') throw new RedisUrlError(`Invalid Redis URL ${shown}: no host (${USAGE}).`);
  const port = url.port === '' ? 6379 : Number(url.port);
  const dbPath = url.pathname.replace(/^\//, '');
  if (!/^\d{0,2}$/.test(dbPath)) {
    throw new RedisUrlError(`Invalid Redis URL ${shown}: the path must be a database number (${USAGE}).`);
  }
  if (url.search !== '' || url.hash !== '') {
    throw new RedisUrlError(`Invalid Redis URL ${shown}: no query or fragment allowed (${USAGE}).`);
  }
  const username = url.username === '' ? undefined : decodeURIComponent(url.username);
  const password = url.password === '' ? undefined : decodeURIComponent(url.password);
  // IPv6 hosts come bracketed from URL; net.connect wants them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const auth =
    username !== undefined || password !== undefined ? `${username ?? ''}${password ? ':***' : ''}@` : '';
  return {
    host,
    port,
    db: dbPath === '' ? 0 : Number(dbPath),
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
    tls: url.protocol === 'rediss:',
    redacted: `${url.protocol}//${auth}${url.host}/${dbPath === '' ? 0 : Number(dbPath)}`,
  };
}

/**
 * ioredis options for a target. `maxRetriesPerRequest: null` is what BullMQ's workers require
 * (their blocking commands wait out a reconnect instead of failing); ioredis reconnects by itself
 * with a capped backoff, so a restarted Redis is found again without a restart of ours.
 */
export function ioredisOptions(t: RedisTarget): RedisOptions {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username !== undefined && { username: t.username }),
    ...(t.password !== undefined && { password: t.password }),
    ...(t.tls && { tls: { servername: t.host } }),
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(200 * times, 2000),
  };
}
