/**
 * The model registry (issue 13 §3): which versions of which image models exist, and which one
 * serves diagnoses (active), which takes a share of them (canary), and which no longer does
 * (retired). Models are global, not per clinic; changing them needs models:manage (admin), and,
 * when the deployment names them (AGENTICPET_MODEL_ADMIN_CLINICS), an admin of one of those
 * clinics: in a shared deployment one clinic's admin must not change every clinic's models.
 *
 * Every change commits with its audit event (in the changing admin's clinic chain), then tells
 * every instance to drop its cached serving set (ServingModels): activate, canary and roll back
 * take effect without a redeploy.
 */
import { uuidv7 } from '../ids.js';
import { ConflictError, ForbiddenError, NotFoundError, UnprocessableError } from '../errors.js';
import { Operations, type AuditDraft } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { ClinicalTx, ModelChangeBus, ModelStatus, RegisteredModel, RequestContext } from '../ports.js';
import type { Model, ModelInput } from '../../contract/model-schemas.js';

export function modelView(m: RegisteredModel): Model {
  return {
    id: m.id,
    name: m.name,
    version: m.version,
    sha256: m.sha256,
    input: m.input,
    output: m.output,
    labels: m.labels,
    status: m.status,
    canaryShare: m.canaryShare,
    activatedAt: m.activatedAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
  };
}

export interface RegistryOptions {
  /** Finding codes of the knowledge base: a label must map to one of them (or to none). */
  findingCodes: ReadonlySet<string>;
  bus?: ModelChangeBus;
  /** Called after every committed change (this instance's own cache). */
  onChange?: () => void;
  /** Clinics whose admins may change the registry; unset: any clinic's admin (one-clinic deployments). */
  adminClinics?: ReadonlySet<string>;
}

type Change = { action: 'create' | 'update'; outcome: string };

export class ModelRegistryService {
  constructor(
    private readonly ops: Operations,
    private readonly opts: RegistryOptions,
  ) {}

  private requireManager(ctx: RequestContext): void {
    requirePermission(ctx, 'models:manage');
    const allowed = this.opts.adminClinics;
    if (allowed !== undefined && !allowed.has(ctx.principal.clinicId)) {
      throw new ForbiddenError('The model registry is shared by every clinic: only the admins of the clinics named in AGENTICPET_MODEL_ADMIN_CLINICS may change it');
    }
  }

  list(ctx: RequestContext, name?: string): Promise<{ items: Model[] }> {
    requirePermission(ctx, 'models:read');
    return this.ops.run(ctx, { action: 'search', entityType: 'model', entityId: null, detail: name === undefined ? undefined : { name } }, async (tx) => ({
      items: (await tx.models.listModels(name)).map(modelView),
    }));
  }

  get(ctx: RequestContext, name: string, version: string): Promise<Model> {
    requirePermission(ctx, 'models:read');
    return this.ops.run(ctx, { action: 'read', entityType: 'model', entityId: null, detail: { name, version } }, async (tx, d) => {
      const m = await tx.models.getModel(name, version);
      if (m === null) throw new NotFoundError('Model', `${name}@${version}`);
      d.entityId = m.id;
      return modelView(m);
    });
  }

  /** The checks the schema cannot make: labels' findings in the knowledge base, one mean and std per channel. */
  private check(input: ModelInput): void {
    const { channels, mean, std } = input.input;
    if (mean.length !== channels || std.length !== channels) {
      throw new UnprocessableError('invalid-model', `input.mean and input.std need one value per channel (${channels})`, { field: 'input' });
    }
    const seen = new Set<string>();
    input.labels.forEach((l, i) => {
      if (seen.has(l.label)) throw new UnprocessableError('invalid-model', `labels[${i}]: label "${l.label}" appears twice`, { field: `labels[${i}].label` });
      seen.add(l.label);
      if (l.finding !== null && !this.opts.findingCodes.has(l.finding)) {
        throw new UnprocessableError('unknown-finding', `labels[${i}]: finding "${l.finding}" is not a finding of the knowledge base`, { field: `labels[${i}].finding` });
      }
    });
  }

  async register(ctx: RequestContext, input: ModelInput): Promise<{ status: number; body: Model; location: string }> {
    this.requireManager(ctx);
    this.check(input);
    const created = await this.ops.run(ctx, { action: 'create', entityType: 'model', entityId: null, detail: { name: input.name, version: input.version, sha256: input.sha256 } }, async (tx, d) => {
      const m = await tx.models.insertModel({ id: uuidv7(), ...input }, new Date());
      if (m === null) throw new ConflictError('model-exists', `${input.name}@${input.version} is already registered (a version is never changed: register a new one)`);
      d.entityId = m.id;
      return m;
    });
    return { status: 201, body: modelView(created), location: `/models/${created.name}/versions/${created.version}` };
  }

  /** Runs one status change of `name` with every version of it locked, then tells every instance. */
  private async change(ctx: RequestContext, name: string, version: string | null, change: Change, fn: (tx: ClinicalTx, versions: RegisteredModel[], target: RegisteredModel | null, d: AuditDraft) => Promise<RegisteredModel>): Promise<Model> {
    this.requireManager(ctx);
    const draft: AuditDraft = { action: change.action, entityType: 'model', entityId: null, outcome: change.outcome, detail: version === null ? { name } : { name, version } };
    const changed = await this.ops.run(ctx, draft, async (tx, d) => {
      const versions = await tx.models.listModels(name, { forUpdate: true });
      const target = version === null ? null : (versions.find((m) => m.version === version) ?? null);
      if (version !== null && target === null) throw new NotFoundError('Model', `${name}@${version}`);
      if (version === null && versions.length === 0) throw new NotFoundError('Model', name);
      const m = await fn(tx, versions, target, d);
      d.entityId = m.id;
      d.detail = { ...d.detail, version: m.version, status: m.status, canaryShare: m.canaryShare };
      return m;
    });
    this.opts.onChange?.();
    await this.opts.bus?.publish().catch(() => undefined /* best effort: the cache TTL bounds a lost message */);
    return modelView(changed);
  }

  /** Makes this version the one every diagnosis uses; the version active before is retired. */
  activate(ctx: RequestContext, name: string, version: string): Promise<Model> {
    return this.change(ctx, name, version, { action: 'update', outcome: 'activated' }, async (tx, versions, target, d) => {
      const at = new Date();
      const current = versions.find((m) => m.status === 'active');
      if (current?.id === target!.id) return target!;
      if (current !== undefined) {
        await tx.models.setStatus(current.id, 'retired', 0, at);
        d.detail = { ...d.detail, previous: current.version };
      }
      return tx.models.setStatus(target!.id, 'active', 0, at, { activated: true });
    });
  }

  /** Gives this version `share` of the diagnoses (the active version keeps the rest); one canary per name. */
  canary(ctx: RequestContext, name: string, version: string, share: number): Promise<Model> {
    return this.change(ctx, name, version, { action: 'update', outcome: 'canary' }, async (tx, versions, target) => {
      if (target!.status === 'active') throw new ConflictError('model-is-active', `${name}@${version} is the active version: a canary must be another version`);
      const at = new Date();
      for (const m of versions) if (m.status === 'canary' && m.id !== target!.id) await tx.models.setStatus(m.id, 'retired', 0, at);
      return tx.models.setStatus(target!.id, 'canary', share, at);
    });
  }

  /**
   * Goes back to the version that was active before the current one (the latest activated before
   * it); the current one and any canary of the name are retired. Rolling back again goes further back.
   */
  rollback(ctx: RequestContext, name: string): Promise<Model> {
    return this.change(ctx, name, null, { action: 'update', outcome: 'rolled-back' }, async (tx, versions, _target, d) => {
      const current = versions.find((m) => m.status === 'active');
      if (current === undefined) throw new ConflictError('no-active-model', `${name} has no active version to roll back`);
      const before = versions
        .filter((m) => m.id !== current.id && m.activatedAt !== null && current.activatedAt !== null && m.activatedAt < current.activatedAt)
        .sort((a, b) => b.activatedAt!.getTime() - a.activatedAt!.getTime())[0];
      if (before === undefined) throw new ConflictError('no-previous-version', `${name}@${current.version} is the first version ever activated: there is none to roll back to (retire it instead)`);
      const at = new Date();
      await tx.models.setStatus(current.id, 'retired', 0, at);
      for (const m of versions) if (m.status === 'canary') await tx.models.setStatus(m.id, 'retired', 0, at);
      d.detail = { ...d.detail, previous: current.version };
      // activatedAt is kept: it orders the versions a later rollback goes back through.
      return tx.models.setStatus(before.id, 'active', 0, at);
    });
  }

  /** Takes a version out of service (an active one leaves the name without a model). */
  retire(ctx: RequestContext, name: string, version: string): Promise<Model> {
    return this.change(ctx, name, version, { action: 'update', outcome: 'retired' }, async (tx, _versions, target) => tx.models.setStatus(target!.id, 'retired' satisfies ModelStatus, 0, new Date()));
  }
}
