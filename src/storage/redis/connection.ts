/**
 * Opens the service's Redis clients from REDIS_URL, the same way for every one of them (the
 * sessions' connection, which the rate limits share, and the revocation bus's publisher and
 * subscriber): a redis:// or rediss:// URL names one server; redis+sentinel:// names Redis
 * Sentinel (config.ts, parseSentinelUrl).
 *
 * With Sentinel, ioredis asks a sentinel for the current primary on every (re)connect and
 * refuses a node whose role is replica, so a failover is followed without a restart: while
 * the old primary is gone commands fail fast as they do when a single Redis is down (the
 * session tier serves from memory meanwhile), and the next reconnect lands on the promoted
 * replica. `failoverDetector` also subscribes to the sentinels' +switch-master, so a primary
 * demoted while still alive (a manual SENTINEL FAILOVER) is left at once, not on its next error.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { parseSentinelUrl, SENTINEL_SCHEME } from '../../config.js';

/** ioredis's connection options for a Sentinel URL (plain URLs ioredis parses itself). */
export function sentinelOptions(url: string): RedisOptions {
  const t = parseSentinelUrl(url);
  const options: RedisOptions = { sentinels: t.sentinels, name: t.name, failoverDetector: true };
  if (t.db !== undefined) options.db = t.db;
  if (t.username !== undefined) options.username = t.username;
  if (t.password !== undefined) options.password = t.password;
  if (t.sentinelPassword !== undefined) options.sentinelPassword = t.sentinelPassword;
  return options;
}

/** A client for `url`, with `options` (timeouts, retry strategy) over its connection settings. */
export function openRedis(url: string, options: RedisOptions): Redis {
  return url.startsWith(SENTINEL_SCHEME) ? new Redis({ ...sentinelOptions(url), ...options }) : new Redis(url, options);
}
