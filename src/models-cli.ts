/**
 * `agenticpet models list | register | activate | canary | rollback | retire`: the registry's
 * service from the command line, as an admin API key (AGENTICPET_API_KEY) of the clinic whose
 * audit chain records the change. Knows no adapter: cli.ts gives it the service and the caller.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import type { ModelRegistryService } from './clinical/models/registry.js';
import type { RequestContext } from './clinical/ports.js';
import { ModelInput, type Model } from './contract/model-schemas.js';

export const MODELS_USAGE = `Usage (as the admin key in AGENTICPET_API_KEY):
  agenticpet models list [--name NAME]
  agenticpet models register --file SPEC.json [--artefact model.onnx]
                                        SPEC: {name, version, sha256, input, output, labels} (see
                                        POST /v1/models); with --artefact its SHA-256 is computed
                                        (and must match the spec's, when the spec gives one)
  agenticpet models activate NAME VERSION
  agenticpet models canary NAME VERSION --share S     S in (0, 1]
  agenticpet models rollback NAME
  agenticpet models retire NAME VERSION`;

export class ModelsUsageError extends Error {}

const line = (m: Model) => `${m.name}@${m.version}  ${m.status}${m.status === 'canary' ? ` (share ${m.canaryShare})` : ''}  sha256 ${m.sha256}  labels ${m.labels.map((l) => `${l.label}->${l.finding ?? '(kind)'}`).join(', ')}`;

export async function modelsCommand(service: ModelRegistryService, ctx: RequestContext, sub: string | undefined, args: string[], print: (text: string) => void = console.log): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: { name: { type: 'string' }, file: { type: 'string' }, artefact: { type: 'string' }, share: { type: 'string' } } });
  } catch (err) {
    throw new ModelsUsageError(`${(err as Error).message}\n${MODELS_USAGE}`);
  }
  const { values, positionals } = parsed;
  const need = (n: number) => {
    if (positionals.length !== n) throw new ModelsUsageError(`models ${sub} takes ${n === 1 ? 'NAME' : 'NAME VERSION'}\n${MODELS_USAGE}`);
  };
  switch (sub) {
    case 'list': {
      const { items } = await service.list(ctx, values.name);
      if (items.length === 0) print('No models registered.');
      for (const m of items) print(line(m));
      return 0;
    }
    case 'register': {
      if (values.file === undefined) throw new ModelsUsageError(`models register needs --file SPEC.json\n${MODELS_USAGE}`);
      const spec = JSON.parse(fs.readFileSync(values.file, 'utf8')) as Record<string, unknown>;
      if (values.artefact !== undefined) {
        const sha256 = createHash('sha256').update(fs.readFileSync(values.artefact)).digest('hex');
        if (spec.sha256 !== undefined && spec.sha256 !== sha256) throw new ModelsUsageError(`${values.artefact} has SHA-256 ${sha256}, the spec says ${String(spec.sha256)}`);
        spec.sha256 = sha256;
      }
      if (!Value.Check(ModelInput, spec)) {
        const first = [...Value.Errors(ModelInput, spec)][0];
        throw new ModelsUsageError(`${values.file}: ${first?.path || '/'} ${first?.message ?? 'is not a model spec'}`);
      }
      const { body } = await service.register(ctx, spec);
      print(`Registered ${line(body)}`);
      return 0;
    }
    case 'activate':
      need(2);
      print(`Active: ${line(await service.activate(ctx, positionals[0]!, positionals[1]!))}`);
      return 0;
    case 'canary': {
      need(2);
      const share = Number(values.share);
      if (values.share === undefined || !(share > 0 && share <= 1)) throw new ModelsUsageError(`models canary needs --share S with 0 < S <= 1\n${MODELS_USAGE}`);
      print(`Canary: ${line(await service.canary(ctx, positionals[0]!, positionals[1]!, share))}`);
      return 0;
    }
    case 'rollback':
      need(1);
      print(`Rolled back; active: ${line(await service.rollback(ctx, positionals[0]!))}`);
      return 0;
    case 'retire':
      need(2);
      print(`Retired: ${line(await service.retire(ctx, positionals[0]!, positionals[1]!))}`);
      return 0;
    default:
      throw new ModelsUsageError(MODELS_USAGE);
  }
}
