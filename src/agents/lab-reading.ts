/**
 * Reading one lab value as an instrument or a laboratory wrote it: a number (or a string holding
 * one, with a unit, a detection-limit sign or a decimal comma: "5.4 mmol/L", "<0.5", ">=2000",
 * "5,4"), in any unit of
 * the analyte's families (UCUM or display form), or a dipstick result as a grade ("2+", "++",
 * "trace", "neg", "small") or as the block concentration its strip prints. The value comes back
 * in the knowledge base's US unit (the grade's number for a dipstick), or with the field at fault.
 */
import type { AnalyteRef } from '../knowledge/analyte-index.js';
import type { Analyte } from '../knowledge/model.js';
import { canonicalUnit, unitOf, type UnitFamily } from '../knowledge/units.js';
import type { CaseLab } from './types.js';

const MOL_PER_L = unitOf('mol/L')!;

export type Reading = { value: number; unit: string } | { problem: string; field: 'value' | 'unit' };

// The high/low flag a laboratory system may append ("5.4 H", "320 mg/dL HH", "7.1*"): this agent flags against its own interval.
const LAB_FLAG = /(?:\s+(?:HH|LL|H|L)|\s*[*!↑↓])\s*$/;
// Optional detection-limit sign, a number, then optionally its unit.
const NUMBER_WITH_UNIT = /^\s*(?:<=|>=|≤|≥|<|>)?\s*([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+))\s*(\S.*?)?\s*$/;
// A decimal comma as European systems write it ("5,4"); three digits after it could as well be thousands.
const DECIMAL_COMMA = /,\d{1,2}$/;

/** A number sent as a string, and any unit written after it; null when the string is not a number, "ambiguous" for "1,025". */
function splitNumber(value: string): { n: number; unit: string } | 'ambiguous' | null {
  const m = NUMBER_WITH_UNIT.exec(value.replace(LAB_FLAG, ''));
  if (m === null) return null;
  let number = m[1]!;
  if (number.includes(',')) {
    if (!DECIMAL_COMMA.test(number)) return 'ambiguous';
    number = number.replace(',', '.');
  }
  return { n: Number(number), unit: m[2] ?? '' };
}

const ambiguous = (value: string | number) => `"${value}" could be a decimal comma or a thousands separator: write it with a decimal point and no separator`;

/** How strips write the common grades, whatever the analyte: definitions of the notation, not clinical facts. */
const NOTATION: Record<string, string> = {
  neg: 'negative',
  negative: 'negative',
  nil: 'negative',
  none: 'negative',
  '-': 'negative',
  tr: 'trace',
  trace: 'trace',
  '±': 'trace',
  '+/-': 'trace',
  '+': '1+',
  '++': '2+',
  '+++': '3+',
  '++++': '4+',
  '+1': '1+',
  '+2': '2+',
  '+3': '3+',
  '+4': '4+',
};

const gradeForms = new WeakMap<Analyte, Map<string, number>>();

/** Every written form of the analyte's grades, built once per analyte: reading one is a map lookup. */
function formsOf(analyte: Analyte): Map<string, number> {
  let forms = gradeForms.get(analyte);
  if (forms !== undefined) return forms;
  const scale = analyte.scale!;
  forms = new Map();
  for (const [grade, n] of Object.entries(scale)) forms.set(grade.toLowerCase(), n);
  for (const [form, grade] of Object.entries(NOTATION)) if (scale[grade] !== undefined) forms.set(form, scale[grade]);
  for (const [word, grade] of Object.entries(analyte.gradeWords?.words ?? {})) forms.set(word.toLowerCase(), scale[grade]!);
  // A qualitative "positive" establishes no more than the lowest positive grade.
  const lowest = Math.min(...Object.values(scale).filter((n) => n > (scale.negative ?? 0)));
  forms.set('pos', lowest).set('positive', lowest);
  gradeForms.set(analyte, forms);
  return forms;
}

function gradeOf(analyte: Analyte, text: string): number | undefined {
  const forms = formsOf(analyte);
  const hit = forms.get(text);
  if (hit !== undefined) return hit;
  const key = text.trim().toLowerCase().replace(/\s+/g, '').replace(/\.$/, '');
  // "1+ (30 mg/dL)": the grade the strip reported, with its block printed beside it.
  return forms.get(key) ?? forms.get(key.replace(/\(.*\)$/, ''));
}

/** The grade of the highest printed block a concentration reaches; above zero but under the lowest block, the lowest positive grade. */
function padGrade(analyte: Analyte, n: number, unit: string): number | null | undefined {
  const scale = analyte.scale!;
  const canonical = canonicalUnit(unit);
  const pads = analyte.pads?.find((p) => canonicalUnit(p.unit) === canonical);
  if (pads === undefined) return undefined;
  if (n < 0) return null;
  if (n === 0) return scale.negative ?? null;
  let grade: number | null = null;
  for (const [name, block] of Object.entries(pads.grades)) if (n >= block * 0.999 && scale[name] !== undefined && (grade === null || scale[name] > grade)) grade = scale[name];
  return grade ?? Math.min(...Object.values(scale).filter((g) => g > (scale.negative ?? 0)));
}

function familyFits(expected: UnitFamily, given: UnitFamily): boolean {
  return expected === given || (expected === 'substance' && given === 'equivalents');
}

/**
 * A mass-concentration code sent with a molar unit, or the other way round (LOINC 2345-7, glucose
 * by mass, with a value in mmol/L): the analyte is unmistakable and the value converts (a molar
 * mass or SI factor in the knowledge base), so the result is read rather than refused.
 */
function massOrMoles(expected: UnitFamily, given: UnitFamily, analyte: Analyte): boolean {
  const pair = (expected === 'mass' && given === 'substance') || (expected === 'substance' && given === 'mass');
  return pair && (analyte.siFactor !== null || analyte.molarMass !== undefined);
}

/** What a dipstick result may be, said when it is none of them (built only then). */
function gradeProblem(analyte: Analyte): string {
  const printed = analyte.pads?.length ? `, or a strip's printed concentration in ${analyte.pads.map((p) => p.unit).join(' or ')}` : '';
  return `a ${analyte.name} result must be a grade (${Object.keys(analyte.scale!).join(', ')}; also +, ++, neg, tr${analyte.gradeWords ? `, ${Object.keys(analyte.gradeWords.words).join(', ')}` : ''})${printed}`;
}

function readGrade(ref: AnalyteRef, lab: Pick<CaseLab, 'value' | 'unit'>): Reading {
  const analyte = ref.analyte;
  const givenUnit = (lab.unit ?? '').trim();
  if (typeof lab.value === 'string') {
    const g = gradeOf(analyte, lab.value);
    if (g !== undefined) return { value: g, unit: givenUnit };
  }
  const split = typeof lab.value === 'number' ? { n: lab.value, unit: '' } : splitNumber(lab.value);
  if (split === 'ambiguous') return { problem: ambiguous(lab.value), field: 'value' };
  if (split === null || !Number.isFinite(split.n)) return { problem: gradeProblem(analyte), field: 'value' };
  const unit = givenUnit !== '' && canonicalUnit(givenUnit) !== 'grade' ? givenUnit : split.unit;
  if (unit === '' || canonicalUnit(unit) === 'grade') {
    // A bare number is the grade's own number on the scale (0 = negative ...).
    return Object.values(analyte.scale!).includes(split.n) ? { value: split.n, unit: givenUnit } : { problem: gradeProblem(analyte), field: 'value' };
  }
  if (ref.loinc !== undefined) {
    const def = unitOf(unit);
    if (def !== null && !familyFits(ref.loinc.unitFamily, def.family)) return { problem: `LOINC ${ref.loinc.code} is a ${ref.loinc.unitFamily} result; "${unit}" is ${def.family}`, field: 'unit' };
  }
  const g = padGrade(analyte, split.n, unit);
  if (g === null) return { problem: gradeProblem(analyte), field: 'value' };
  // A number in a unit no strip of this pad prints is the unit's fault.
  if (g === undefined) return { problem: analyte.pads === undefined ? `${gradeProblem(analyte)}; no strip chart in the knowledge base maps a ${analyte.name} concentration ("${unit}") onto a grade` : gradeProblem(analyte), field: 'unit' };
  return { value: g, unit };
}

const unitsOf = (a: Analyte) => `${a.unitUS}${a.unitSI !== a.unitUS ? ` or ${a.unitSI}` : ''}`;

/** The value in the analyte's US unit (or its grade), or why it cannot be read and which field is at fault. */
export function readLab(ref: AnalyteRef, lab: Pick<CaseLab, 'value' | 'unit'>): Reading {
  const analyte = ref.analyte;
  if (analyte.scale !== undefined) return readGrade(ref, lab);
  const split = typeof lab.value === 'number' ? { n: lab.value, unit: '' } : splitNumber(lab.value);
  if (split === 'ambiguous') return { problem: ambiguous(lab.value), field: 'value' };
  if (split === null || !Number.isFinite(split.n)) return { problem: `a ${analyte.name} result must be a number`, field: 'value' };
  const givenUnit = (lab.unit ?? '').trim();
  const unitText = givenUnit !== '' ? givenUnit : split.unit;
  const given = unitOf(unitText);
  if (givenUnit !== '' && split.unit !== '') {
    const inValue = unitOf(split.unit);
    if (inValue === null || given === null || inValue.family !== given.family || inValue.scale !== given.scale) return { problem: `the value says "${split.unit}" but the unit says "${givenUnit}"`, field: 'value' };
  }
  if (given === null) return { problem: `unit "${unitText}" cannot be converted for ${analyte.analyte}; use ${unitsOf(analyte)}`, field: 'unit' };
  if (ref.loinc !== undefined && !familyFits(ref.loinc.unitFamily, given.family) && !(unitText === '' && ref.loinc.unitFamily !== 'ratio') && !massOrMoles(ref.loinc.unitFamily, given.family, analyte)) {
    return { problem: `LOINC ${ref.loinc.code} is a ${ref.loinc.unitFamily} result; "${unitText}" is ${given.family}`, field: 'unit' };
  }
  // Another substance's mass (urea for urea nitrogen) is this analyte's by the ratio of their masses; moles need no factor.
  let n = ref.massFactor !== undefined && given.family === 'mass' ? split.n * ref.massFactor : split.n;
  let as = given;
  const us = unitOf(analyte.unitUS)!;
  const si = unitOf(analyte.unitSI)!;
  if (given.family === 'mass' && us.family !== 'mass' && si.family !== 'mass' && analyte.molarMass !== undefined) {
    // A mass where the analyte is kept in moles (magnesium in mg/dL): to mol/L by its molar mass.
    n = (n * given.scale) / analyte.molarMass.value;
    as = MOL_PER_L;
  }
  const value = as.family === us.family ? (n * as.scale) / us.scale : as.family === si.family && analyte.siFactor !== null ? (n * as.scale) / si.scale / analyte.siFactor : null;
  if (value !== null) {
    // Every analyte of the knowledge base is a concentration, an activity, a count, a fraction, a
    // time or a ratio: none is below zero. Past 1e12 in its own unit no result is real, and the
    // answer's rounding to 3 decimals would overflow.
    if (split.n < 0) return { problem: `a ${analyte.name} result cannot be negative (${split.n})`, field: 'value' };
    return Number.isFinite(value) && Math.abs(value) < 1e12 ? { value, unit: unitText } : { problem: `a ${analyte.name} result of ${split.n} ${unitText} is out of range`, field: 'value' };
  }
  if (unitText === '') return { problem: `a ${analyte.name} result needs its unit: ${unitsOf(analyte)}`, field: 'unit' };
  return { problem: `unit "${unitText}" cannot be converted for ${analyte.analyte}; use ${unitsOf(analyte)}`, field: 'unit' };
}
