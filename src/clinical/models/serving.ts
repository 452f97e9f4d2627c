/**
 * Which model versions a diagnosis runs: the serving set (active and canary versions), cached in
 * process, and the per-diagnosis choice between a name's active and canary version.
 *
 * The cache is only read by a diagnosis that has images, so one without costs nothing: no
 * query, no Redis command. It is dropped when the registry changes (this instance at once; the
 * others through the change bus: IPC between workers, Redis pub/sub between hosts) and reloaded
 * at most every ttlMs anyway, which bounds a lost invalidation message.
 *
 * The canary choice hashes the diagnosis id with the model name: each diagnosis is assigned
 * once, independently per name, and a replay of the same id chooses the same.
 */
import { hash } from 'node:crypto';
import type { ModelCatalog, ModelChangeBus, RegisteredModel } from '../ports.js';

/** A uniform number in [0, 1) from the key: the first 48 bits of its SHA-256. */
export function unitHash(key: string): number {
  return parseInt(hash('sha256', key, 'hex').slice(0, 12), 16) / 2 ** 48;
}

/** Per name: the canary version for `canaryShare` of the keys, else the active one (if any). */
export function chooseVersions(serving: readonly RegisteredModel[], key: string): RegisteredModel[] {
  const byName = new Map<string, { active?: RegisteredModel; canary?: RegisteredModel }>();
  for (const m of serving) {
    const entry = byName.get(m.name) ?? {};
    if (m.status === 'active') entry.active = m;
    else if (m.status === 'canary') entry.canary = m;
    byName.set(m.name, entry);
  }
  const chosen: RegisteredModel[] = [];
  for (const [name, { active, canary }] of [...byName].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (canary !== undefined && unitHash(`${key}\u0000${name}`) < canary.canaryShare) chosen.push(canary);
    else if (active !== undefined) chosen.push(active);
  }
  return chosen;
}

export class ServingModels {
  private cached: { at: number; models: Promise<RegisteredModel[]> } | undefined;

  constructor(
    private readonly catalog: ModelCatalog,
    private readonly ttlMs: number,
    bus?: ModelChangeBus,
    private readonly now: () => number = Date.now,
  ) {
    bus?.onChange(() => this.invalidate());
  }

  invalidate(): void {
    this.cached = undefined;
  }

  /** The serving set; a failed load is not kept (the next diagnosis with images tries again). */
  current(): Promise<RegisteredModel[]> {
    const t = this.now();
    if (this.cached === undefined || t - this.cached.at >= this.ttlMs) {
      const models = this.catalog.servingModels();
      const entry = { at: t, models };
      this.cached = entry;
      models.catch(() => {
        if (this.cached === entry) this.cached = undefined;
      });
    }
    return this.cached.models;
  }
}
