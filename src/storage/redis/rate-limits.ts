/**
 * The request budgets' counters on Redis, shared by every instance: one script call checks both
 * budgets and counts a request (or a lease of several, see clinical/access/rate-leases.ts) against
 * both, atomically and in one round trip.
 *
 * Keys (both under the clinic's hash tag, so a Redis Cluster keeps them in one slot, as a
 * script touching both requires):
 *   <prefix>:rl:{<clinicId>}:key:<keyId>   the key's count in its current window
 *   <prefix>:rl:{<clinicId>}:clinic        the clinic's count in its current window
 * A window starts with the first request counted in it (the key's expiry is set then) and ends
 * when the key expires, so windows are staggered across keys rather than all turning over on
 * the minute, and every instance reads the same time (Redis's own clock).
 */
import type { Cluster, Redis } from 'ioredis';
import type { BulkRateCounterStore } from '../../clinical/access/rate-leases.js';
import type { RateCounts } from '../../clinical/access/rate-limits.js';

/**
 * KEYS: the key's counter, the clinic's counter. ARGV: key limit, clinic limit (0: that budget
 * is off and its counter is not touched), window ms, n (requests asked for, 1 or a lease).
 * Grants as many of the n as every budget has room for; if any, counts them against each (SET ...
 * PX starts a window, INCRBY continues one). A counter found without an expiry (never written by
 * this script) is treated as a fresh window. Returns granted (0..n) and, per budget, its count and
 * the ms left in its window.
 */
const TAKE_SCRIPT = `
local window = tonumber(ARGV[3])
local granted = tonumber(ARGV[4])
local counts = {0, 0}
local ttls = {0, 0}
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl > 0 then
      counts[i] = tonumber(redis.call('GET', KEYS[i])) or 0
      ttls[i] = ttl
    else
      ttls[i] = window
    end
    granted = math.max(0, math.min(granted, limit - counts[i]))
  end
end
if granted > 0 then
  for i = 1, 2 do
    if tonumber(ARGV[i]) > 0 then
      if counts[i] == 0 then
        redis.call('SET', KEYS[i], granted, 'PX', window)
        ttls[i] = window
      else
        redis.call('INCRBY', KEYS[i], granted)
      end
      counts[i] = counts[i] + granted
    end
  end
end
return {granted, counts[1], ttls[1], counts[2], ttls[2]}
`;

/** The session tier's connect timeout: the longest a request waits for the first connection. */
const FIRST_CONNECTION_WAIT_MS = 2_000;

interface TakeScript {
  agenticpetRateTake(keyCounter: string, clinicCounter: string, keyLimit: number, clinicLimit: number, windowMs: number, n: number): Promise<[number, number, number, number, number]>;
}

/** The two counters of a key of a clinic; the ids are percent-encoded so neither can end the hash tag. */
export function rateLimitKeys(prefix: string, clinicId: string, keyId: string): { key: string; clinic: string } {
  const tag = `${prefix}:rl:{${encodeURIComponent(clinicId)}}`;
  return { key: `${tag}:key:${encodeURIComponent(keyId)}`, clinic: `${tag}:clinic` };
}

export class RedisRateCounterStore implements BulkRateCounterStore {
  /** Set while the connection's first attempt is under way; see the constructor. */
  private firstConnection: Promise<void> | undefined;

  /**
   * client: a connection opened with FAIL_FAST_REDIS_OPTIONS (the session tier's is shared), so a
   * dead Redis fails the call at once and a hung one within the command timeout.
   */
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix: string,
  ) {
    if (/[{}]/.test(prefix)) throw new Error(`rate-limit key prefix must not contain { or }: ${prefix}`);
    // EVALSHA; ioredis loads the script again when Redis answers NOSCRIPT (after a restart or failover).
    client.defineCommand('agenticpetRateTake', { lua: TAKE_SCRIPT, numberOfKeys: 2 });
    // Without an offline queue a command fails while the connection is being made; requests in
    // the first milliseconds wait for it (bounded) rather than pass unchecked and report an
    // outage that is not one. Afterwards a lost connection fails the call at once.
    if (client.status === 'connecting' || client.status === 'connect' || client.status === 'wait') {
      this.firstConnection = new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          client.off('ready', done);
          client.off('error', done);
          client.off('end', done);
          this.firstConnection = undefined;
          resolve();
        };
        const timer = setTimeout(done, FIRST_CONNECTION_WAIT_MS);
        timer.unref();
        client.once('ready', done);
        client.once('error', done);
        client.once('end', done);
      });
    }
  }

  async take(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number): Promise<RateCounts> {
    const { granted: _granted, ...counts } = await this.takeMany(keyId, clinicId, keyLimit, clinicLimit, windowMs, 1);
    return counts;
  }

  async takeMany(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number, n: number): Promise<RateCounts & { granted: number }> {
    if (this.firstConnection !== undefined) await this.firstConnection;
    const k = rateLimitKeys(this.prefix, clinicId, keyId);
    const r = await (this.client as unknown as TakeScript).agenticpetRateTake(k.key, k.clinic, keyLimit, clinicLimit, windowMs, Math.max(1, Math.floor(n)));
    return { admitted: r[0] > 0, granted: r[0], keyCount: r[1], keyResetMs: r[2], clinicCount: r[3], clinicResetMs: r[4] };
  }
}
