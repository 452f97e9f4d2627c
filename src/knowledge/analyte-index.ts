/**
 * Every name a laboratory may send for an analyte, resolved once at load: the knowledge base's
 * key, its aliases and display name (canonical spelling), and its LOINC codes. A request then
 * costs one map lookup, whatever form the analyte came in.
 */
import type { Analyte } from './model.js';
import { unitOf, type UnitFamily } from './units.js';

export interface AnalyteRef {
  analyte: Analyte;
  /** Set when the name was a LOINC code: the code, and the unit family its property implies. */
  loinc?: { code: string; unitFamily: UnitFamily };
  /** Set when the name was another substance's (urea for urea nitrogen): a mass of it x massFactor is a mass of the analyte. */
  massFactor?: number;
}

/** "Total Bilirubin", "total-bilirubin" and "TOTAL_BILIRUBIN" are one name; "K+" stays "k+". */
export function canonicalAnalyte(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[()[\]]/g, ' ')
    .replace(/[\s\-./,:]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

export const LOINC_SHAPE = /^\d{1,7}-\d$/;

/** LOINC's mod-10 check digit (the Luhn scheme on the code's number): catches a mistyped code. */
export function loincCheckDigitOk(code: string): boolean {
  const [num, check] = code.split('-') as [string, string];
  let sum = 0;
  for (let i = num.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = num.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10 === Number(check);
}

/** The family an analyte's own units belong to, for checking that a LOINC code's property fits it. */
function familiesOf(a: Analyte): Set<UnitFamily> {
  const out = new Set<UnitFamily>();
  if (a.scale !== undefined) out.add('grade');
  for (const u of [a.unitUS, a.unitSI, ...(a.pads ?? []).map((p) => p.unit)]) {
    const def = unitOf(u);
    if (def !== null) out.add(def.family);
  }
  if (a.molarMass !== undefined && out.has('substance')) out.add('mass');
  if (a.siFactor !== null) {
    // Moles and equivalents of one ion convert through its SI factor (mEq/L = mmol/L x valence).
    if (out.has('substance')) out.add('equivalents');
    if (out.has('equivalents')) out.add('substance');
  }
  return out;
}

/** The index, and every inconsistency found (a name used twice, a bad check digit, a unit this engine cannot read). */
export function buildAnalyteIndex(analytes: Analyte[]): { index: Map<string, AnalyteRef>; problems: string[] } {
  const index = new Map<string, AnalyteRef>();
  const problems: string[] = [];
  const put = (key: string, ref: AnalyteRef, where: string) => {
    const had = index.get(key);
    if (had !== undefined && had.analyte !== ref.analyte) problems.push(`lab-intervals.json ${where}: "${key}" already names ${had.analyte.analyte}`);
    else if (had === undefined) index.set(key, ref);
  };
  for (const a of analytes) put(a.analyte, { analyte: a }, a.analyte);
  for (const a of analytes) {
    if (a.scale === undefined) {
      for (const u of [a.unitUS, a.unitSI]) if (unitOf(u) === null) problems.push(`lab-intervals.json ${a.analyte}: unit "${u}" is not one the labs agent can read`);
    }
    const families = familiesOf(a);
    for (const l of a.loinc ?? []) {
      if (!loincCheckDigitOk(l.code)) problems.push(`lab-intervals.json ${a.analyte}: LOINC ${l.code} fails its check digit`);
      if (!families.has(l.unitFamily)) problems.push(`lab-intervals.json ${a.analyte}: LOINC ${l.code} implies ${l.unitFamily}, which none of the analyte's units is`);
      put(l.code, { analyte: a, loinc: { code: l.code, unitFamily: l.unitFamily } }, `${a.analyte} loinc`);
    }
    for (const alias of a.aliases ?? []) put(canonicalAnalyte(alias), { analyte: a }, `${a.analyte} alias`);
    for (const form of a.massForms ?? []) {
      if (!families.has('mass')) problems.push(`lab-intervals.json ${a.analyte}: massForms needs a mass unit among the analyte's units`);
      for (const name of form.names) put(canonicalAnalyte(name), { analyte: a, massFactor: form.massFactor }, `${a.analyte} massForms`);
    }
    for (const [word, grade] of Object.entries(a.gradeWords?.words ?? {})) {
      if (a.scale?.[grade] === undefined) problems.push(`lab-intervals.json ${a.analyte}: grade word "${word}" maps to "${grade}", not a grade of its scale`);
    }
  }
  // Display names last: an alias or key wins over a name that happens to canonicalise the same.
  for (const a of analytes) {
    const key = canonicalAnalyte(a.name);
    if (!index.has(key)) index.set(key, { analyte: a });
  }
  return { index, problems };
}
