/**
 * Units as laboratories write them: UCUM codes (mg/dL, umol/L, 10*3/uL, [IU]/L, meq/L, {ratio})
 * and the display forms instruments print (µmol/l, x10^9/L, K/uL, mEq/L). Each unit is a family
 * (what it measures) and a scale to that family's base, so any two units of one family convert
 * exactly; crossing families (mass <-> moles) needs an analyte's SI factor and is done by labs.
 * The scales are definitions of the units (SI prefixes, 1 U = 1 umol/min = 1/60 ukat), not facts.
 */

export type UnitFamily = 'mass' | 'substance' | 'equivalents' | 'catalytic' | 'number' | 'fraction' | 'time' | 'ratio' | 'grade';

export interface UnitDef {
  family: UnitFamily;
  /** Multiply a value in this unit by scale to get the family's base unit (g/L, mol/L, eq/L, kat/L, /L, L/L, s, 1). */
  scale: number;
}

const U = 1 / 60e6; // 1 U = 1 umol/min = 1e-6/60 kat

/** Canonical spellings (lower case, no spaces, u for micro, ^ powers written 10^n) -> definition. */
const CANONICAL: Record<string, UnitDef> = {
  'g/l': { family: 'mass', scale: 1 },
  'g/dl': { family: 'mass', scale: 10 },
  'g/100ml': { family: 'mass', scale: 10 },
  'mg/ml': { family: 'mass', scale: 1 },
  'mg/dl': { family: 'mass', scale: 0.01 },
  'mg/100ml': { family: 'mass', scale: 0.01 },
  'mg%': { family: 'mass', scale: 0.01 },
  'mg/l': { family: 'mass', scale: 1e-3 },
  'ug/ml': { family: 'mass', scale: 1e-3 },
  'ug/dl': { family: 'mass', scale: 1e-5 },
  'ug/l': { family: 'mass', scale: 1e-6 },
  'ng/ml': { family: 'mass', scale: 1e-6 },
  'ng/dl': { family: 'mass', scale: 1e-8 },
  'mol/l': { family: 'substance', scale: 1 },
  'mmol/l': { family: 'substance', scale: 1e-3 },
  mm: { family: 'substance', scale: 1e-3 },
  'umol/l': { family: 'substance', scale: 1e-6 },
  um: { family: 'substance', scale: 1e-6 },
  'nmol/l': { family: 'substance', scale: 1e-9 },
  'pmol/l': { family: 'substance', scale: 1e-12 },
  'eq/l': { family: 'equivalents', scale: 1 },
  'meq/l': { family: 'equivalents', scale: 1e-3 },
  'u/l': { family: 'catalytic', scale: U },
  'iu/l': { family: 'catalytic', scale: U },
  '[iu]/l': { family: 'catalytic', scale: U },
  'mu/ml': { family: 'catalytic', scale: U },
  'ku/l': { family: 'catalytic', scale: 1000 * U },
  'kat/l': { family: 'catalytic', scale: 1 },
  'ukat/l': { family: 'catalytic', scale: 1e-6 },
  'nkat/l': { family: 'catalytic', scale: 1e-9 },
  '/l': { family: 'number', scale: 1 },
  '/ul': { family: 'number', scale: 1e6 },
  '/mm3': { family: 'number', scale: 1e6 },
  '10^3/ul': { family: 'number', scale: 1e9 },
  '10^3/mm3': { family: 'number', scale: 1e9 },
  'k/ul': { family: 'number', scale: 1e9 },
  'thou/ul': { family: 'number', scale: 1e9 },
  '10^9/l': { family: 'number', scale: 1e9 },
  '/nl': { family: 'number', scale: 1e9 },
  'gpt/l': { family: 'number', scale: 1e9 },
  '10^6/ul': { family: 'number', scale: 1e12 },
  '10^6/mm3': { family: 'number', scale: 1e12 },
  'm/ul': { family: 'number', scale: 1e12 },
  'mill/ul': { family: 'number', scale: 1e12 },
  '10^12/l': { family: 'number', scale: 1e12 },
  '/pl': { family: 'number', scale: 1e12 },
  'tpt/l': { family: 'number', scale: 1e12 },
  '%': { family: 'fraction', scale: 0.01 },
  'l/l': { family: 'fraction', scale: 1 },
  s: { family: 'time', scale: 1 },
  sec: { family: 'time', scale: 1 },
  seconds: { family: 'time', scale: 1 },
  '': { family: 'ratio', scale: 1 },
  '1': { family: 'ratio', scale: 1 },
  ratio: { family: 'ratio', scale: 1 },
  grade: { family: 'grade', scale: 1 },
};

/** Case matters here only: SI prefix G (giga) and T (tera) per litre, as European analysers print counts. */
const CASE_SENSITIVE: Record<string, UnitDef> = {
  'G/L': { family: 'number', scale: 1e9 },
  'G/l': { family: 'number', scale: 1e9 },
  'T/L': { family: 'number', scale: 1e12 },
  'T/l': { family: 'number', scale: 1e12 },
};

/** A unit's canonical spelling: "µmol/l", "umol/L" and "μmol/L" compare equal; "10*3/uL", "x10³/µL" and "10e3/uL" too. */
export function canonicalUnit(unit: string): string {
  return unit
    .trim()
    .toLowerCase()
    .replace(/[µμ]/g, 'u')
    .replace(/\s+/g, '')
    .replace(/\{[^}]*\}/g, '') // UCUM annotations ({cells}/uL, {ratio}) are unity
    .replace(/^\(ratio\)$/, '')
    .replace(/\(urea\)$/, '') // the knowledge base's "mmol/L (urea)"
    .replace(/[⁹]/g, '^9')
    .replace(/[³]/g, '^3')
    .replace(/[⁶]/g, '^6')
    .replace(/¹²/g, '^12')
    .replace(/mm\^3$/, 'mm3')
    .replace(/^[x×*]?10(\*|\^|e)(\d+)/, '10^$2');
}

const memo = new Map<string, UnitDef | null>();

/** The unit's definition, or null when it is not a unit this engine knows. A string seen before costs one map lookup. */
export function unitOf(unit: string): UnitDef | null {
  const seen = memo.get(unit);
  if (seen !== undefined) return seen;
  const def = CASE_SENSITIVE[unit.trim()] ?? CANONICAL[canonicalUnit(unit)] ?? null;
  // Bounded: a client sending endless novel strings must not grow the memo without limit.
  if (memo.size < 4096) memo.set(unit, def);
  return def;
}
