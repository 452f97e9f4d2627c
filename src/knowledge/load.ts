/**
 * Loads data/knowledge/, validates every file against its schema and every cross-reference
 * (finding, condition, drug and source codes), and fails with the file and path named.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import {
  ConditionsFile,
  DrugsFile,
  FindingsFile,
  LabsFile,
  SourcesFile,
  ToxinsFile,
  TreatmentsFile,
  VitalsFile,
  type Analyte,
  type Condition,
  type Drug,
  type Finding,
  type KbSpecies,
  type Toxin,
} from './model.js';
import { buildAnalyteIndex, type AnalyteRef } from './analyte-index.js';

export interface KnowledgeBase {
  /** Highest file version plus a digest of all the files: changes whenever any fact changes. */
  version: string;
  findings: Map<string, Finding>;
  conditions: Record<KbSpecies, Condition[]>;
  analytes: Map<string, Analyte>;
  /** Every name an analyte may be sent by (key, alias, display name, LOINC code), canonical spelling. */
  analyteIndex: Map<string, AnalyteRef>;
  toxins: Toxin[];
  drugs: Map<string, Drug>;
  vitals: VitalsFile;
  treatments: TreatmentsFile['treatments'];
  sources: Map<string, string>;
}

export const KB_SPECIES: readonly KbSpecies[] = ['dog', 'cat'];

export class KnowledgeError extends Error {
  constructor(message: string) {
    super(`Knowledge base invalid: ${message}`);
    this.name = 'KnowledgeError';
  }
}

export const DEFAULT_KNOWLEDGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../data/knowledge');

const ajv = new Ajv({ allErrors: false, strict: false });

function read<T>(dir: string, file: string, schema: TSchema, digest: ReturnType<typeof createHash>): T {
  const full = path.join(dir, file);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch {
    throw new KnowledgeError(`${file} is missing from ${dir}`);
  }
  digest.update(file).update('\0').update(text).update('\0');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new KnowledgeError(`${file} is not valid JSON (${(err as Error).message})`);
  }
  const validate = ajv.compile(schema);
  if (!validate(data)) {
    const e = validate.errors?.[0];
    throw new KnowledgeError(`${file}${e?.instancePath ?? ''} ${e?.message ?? 'is invalid'}`);
  }
  return data as T;
}

function semverMax(versions: string[]): string {
  return versions.sort((a, b) => {
    const pa = a.split('.').map(Number);
    const pb = b.split('.').map(Number);
    for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
    return 0;
  })[versions.length - 1]!;
}

export function loadKnowledgeBase(dir: string = DEFAULT_KNOWLEDGE_DIR): KnowledgeBase {
  const digest = createHash('sha256');
  const sourcesFile = read<{ version: string; sources: Array<{ id: string; citation: string }> }>(dir, 'sources.json', SourcesFile, digest);
  const findingsFile = read<{ version: string; findings: Finding[] }>(dir, 'findings.json', FindingsFile, digest);
  const dogs = read<{ version: string; species: KbSpecies; conditions: Condition[] }>(dir, 'conditions/dog.json', ConditionsFile, digest);
  const cats = read<{ version: string; species: KbSpecies; conditions: Condition[] }>(dir, 'conditions/cat.json', ConditionsFile, digest);
  const labs = read<{ version: string; analytes: Analyte[] }>(dir, 'lab-intervals.json', LabsFile, digest);
  const toxins = read<{ version: string; toxins: Toxin[] }>(dir, 'toxins.json', ToxinsFile, digest);
  const drugs = read<{ version: string; drugs: Drug[] }>(dir, 'drugs.json', DrugsFile, digest);
  const vitals = read<VitalsFile>(dir, 'vitals.json', VitalsFile, digest);
  const treatments = read<{ version: string; treatments: TreatmentsFile['treatments'] }>(dir, 'treatments.json', TreatmentsFile, digest);

  const sources = new Map(sourcesFile.sources.map((s) => [s.id, s.citation]));
  const findings = new Map(findingsFile.findings.map((f) => [f.code, f]));
  const drugMap = new Map(drugs.drugs.map((d) => [d.code, d]));
  const problems: string[] = [];
  const finding = (where: string, code: string | undefined) => {
    if (code !== undefined && !findings.has(code)) problems.push(`${where} names finding "${code}", which findings.json lacks`);
  };
  const source = (where: string, item: { certainty: string; source?: string; basis?: string }) => {
    if (item.certainty === 'cited' && (item.source === undefined || !sources.has(item.source))) problems.push(`${where} is cited but its source "${item.source}" is not in sources.json`);
    if (item.certainty === 'estimate' && (item.basis === undefined || item.basis.trim() === '')) problems.push(`${where} is an estimate without a basis`);
  };

  for (const f of findingsFile.findings) if (f.unlistedLikelihood !== undefined) source(`findings.json ${f.code} unlistedLikelihood`, f.unlistedLikelihood);
  for (const [file, species] of [[dogs, 'dog'], [cats, 'cat']] as const) {
    if (file.species !== species) problems.push(`conditions/${species}.json says species "${file.species}"`);
    for (const c of file.conditions) {
      const where = `conditions/${species}.json ${c.code}`;
      if (c.species !== species) problems.push(`${where} has species ${c.species}`);
      source(`${where} prior`, c.prior);
      for (const f of c.findings) {
        finding(where, f.code);
        source(`${where} finding ${f.code}`, f);
      }
      for (const e of c.explainsVitals ?? []) {
        const p = vitals.parameters.find((v) => v.code === e.parameter);
        if (p === undefined) problems.push(`${where} explainsVitals names parameter "${e.parameter}", which vitals.json lacks`);
        else if (p.derivedFindings?.[e.direction] === undefined) problems.push(`${where} explainsVitals ${e.parameter} ${e.direction}: vitals.json raises no finding in that direction`);
        source(`${where} explainsVitals ${e.parameter}`, e);
      }
    }
  }
  for (const a of labs.analytes) {
    finding(`lab-intervals.json ${a.analyte}`, a.derivedFindings?.low);
    finding(`lab-intervals.json ${a.analyte}`, a.derivedFindings?.high);
    for (const b of a.bands ?? []) finding(`lab-intervals.json ${a.analyte} band`, b.finding);
    for (const sp of KB_SPECIES) if (a[sp] !== undefined) source(`lab-intervals.json ${a.analyte} ${sp}`, a[sp]!);
    for (const l of a.loinc ?? []) source(`lab-intervals.json ${a.analyte} LOINC ${l.code}`, l);
    if (a.gradeWords !== undefined) source(`lab-intervals.json ${a.analyte} gradeWords`, a.gradeWords);
    (a.massForms ?? []).forEach((f, i) => source(`lab-intervals.json ${a.analyte} massForms ${i}`, f));
    if (a.molarMass !== undefined) source(`lab-intervals.json ${a.analyte} molarMass`, a.molarMass);
    (a.pads ?? []).forEach((p, i) => source(`lab-intervals.json ${a.analyte} pads ${i}`, p));
  }
  const analyteIndex = buildAnalyteIndex(labs.analytes);
  problems.push(...analyteIndex.problems);
  for (const t of toxins.toxins) {
    finding(`toxins.json ${t.code}`, t.exposureFinding);
    t.toxicDoses.forEach((d, i) => source(`toxins.json ${t.code} dose ${i}`, d));
  }
  for (const d of drugs.drugs) {
    d.doses.forEach((dose, i) => source(`drugs.json ${d.code} dose ${i}`, dose));
    d.contraindications.forEach((ci, i) => {
      finding(`drugs.json ${d.code} contraindication ${i}`, ci.finding);
      source(`drugs.json ${d.code} contraindication ${i}`, ci);
    });
  }
  for (const p of vitals.parameters) {
    finding(`vitals.json ${p.code}`, p.derivedFindings?.low);
    finding(`vitals.json ${p.code}`, p.derivedFindings?.high);
    for (const sp of KB_SPECIES) source(`vitals.json ${p.code} ${sp}`, p[sp]);
  }
  for (const m of vitals.mucousMembranes) m.findings.forEach((f) => finding(`vitals.json mucous membranes ${m.value}`, f));
  for (const r of vitals.redFlagFindings) {
    finding('vitals.json red flags', r.code);
    source(`vitals.json red flag ${r.code}`, r);
    for (const m of r.mimics ?? []) {
      finding(`vitals.json red flag ${r.code} mimic`, m.finding);
      source(`vitals.json red flag ${r.code} mimic ${m.finding}`, m);
    }
  }
  const conditionCodes = { dog: new Set(dogs.conditions.map((c) => c.code)), cat: new Set(cats.conditions.map((c) => c.code)) };
  for (const t of treatments.treatments) {
    if (!conditionCodes[t.species].has(t.condition)) problems.push(`treatments.json names ${t.species} condition "${t.condition}", which does not exist`);
    for (const o of t.options) {
      if (!drugMap.has(o.drug)) problems.push(`treatments.json ${t.condition} names drug "${o.drug}", which drugs.json lacks`);
      source(`treatments.json ${t.condition} ${o.drug}`, o);
    }
  }
  if (problems.length > 0) throw new KnowledgeError(`${problems.length} problem(s); first: ${problems[0]}`);

  const version = semverMax([sourcesFile, findingsFile, dogs, cats, labs, toxins, drugs, vitals, treatments].map((f) => f.version));
  return {
    version: `${version}+${digest.digest('hex').slice(0, 12)}`,
    findings,
    conditions: { dog: dogs.conditions, cat: cats.conditions },
    analytes: new Map(labs.analytes.map((a) => [a.analyte, a])),
    analyteIndex: analyteIndex.index,
    toxins: toxins.toxins,
    drugs: drugMap,
    vitals,
    treatments: treatments.treatments,
    sources,
  };
}
