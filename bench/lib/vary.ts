/**
 * Every diagnosis the bench sends is a different case: the vignette's age and weight are
 * placeholders in its body, filled per request from the seeded PRNG (age ×0.75–1.25, weight
 * ×0.88–1.12, one decimal). Nothing can answer from a cache of identical inputs, and the
 * agents run on every request.
 */
import type { Random } from './prng.js';

const PLACEHOLDER = /"@@(age|weight):([0-9.]+)@@"/g;

/** The body with the patient's age and weight replaced by placeholders holding their base value. */
export function signalmentTemplate(request: { patient: Record<string, unknown>; [field: string]: unknown }): string {
  const p = request.patient;
  const mark = (kind: string, v: unknown) => (typeof v === 'number' ? `@@${kind}:${v}@@` : v);
  return JSON.stringify({ ...request, patient: { ...p, ageYears: mark('age', p.ageYears), weightKg: mark('weight', p.weightKg) } });
}

/** A body of the template with a new age and weight drawn around the base values. */
export function varied(template: string, random: Random): string {
  return template.replace(PLACEHOLDER, (_m, kind: string, base: string) => {
    const b = Number(base);
    const v = kind === 'age' ? Math.max(0.2, b * (0.75 + 0.5 * random())) : Math.max(0.3, b * (0.88 + 0.24 * random()));
    return (Math.round(v * 10) / 10).toString();
  });
}
