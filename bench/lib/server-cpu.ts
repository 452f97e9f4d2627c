import fs from 'node:fs';

/**
 * CPU seconds used so far by this host's PostgreSQL and Redis processes (Linux /proc; null
 * elsewhere). Backends that exit in between are not counted, so the run keeps its pool open.
 */
export function serverCpuSeconds(): { postgres: number; redis: number } | null {
  if (!fs.existsSync('/proc/self/stat')) return null;
  const hz = 100;
  const total = { postgres: 0, redis: 0 };
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (comm === 'postgres') total.postgres += ticks / hz;
    else if (comm === 'redis-server') total.redis += ticks / hz;
  }
  return total;
}
