/** The agents on the real knowledge base: intake, labs, plan safety, orchestration and degradation. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Lexicon, runIntake, withinOneEdit } from '../src/agents/intake.js';
import { labUnitProblems, resolveAnalyte, runLabs } from '../src/agents/labs.js';
import { loincCheckDigitOk } from '../src/knowledge/analyte-index.js';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import { topIndices } from '../src/agents/differential.js';
import { runPlan } from '../src/agents/plan.js';
import type { CaseInput, FindingEvidence } from '../src/agents/types.js';
import { DEFAULT_KNOWLEDGE_DIR, loadKnowledgeBase, KnowledgeError } from '../src/knowledge/load.js';
import { OpenAiCompatibleClient } from '../src/llm/openai.js';

const kb = loadKnowledgeBase();
const lexicon = new Lexicon(kb);
const intake = (complaint: string, species: 'dog' | 'cat' = 'dog') => runIntake(lexicon, kb, { species, complaint, signs: [], vitals: {} }).findings;
const has = (findings: FindingEvidence[], code: string, present: boolean) => findings.some((f) => f.code === code && f.present === present);

const baseCase = (over: Partial<CaseInput> = {}): CaseInput => ({
  species: 'dog',
  breed: 'Labrador Retriever',
  ageYears: 6,
  sex: 'male',
  neutered: true,
  weightKg: 30,
  complaint: '',
  signs: [],
  vitals: {},
  labs: [],
  mediaIds: [],
  treatments: [],
  ...over,
});

describe('knowledge base', () => {
  it('loads, with a version that names its content', () => {
    assert.match(kb.version, /^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
    assert.ok(kb.conditions.dog.length >= 80 && kb.conditions.cat.length >= 80);
  });
  it('refuses a broken directory with the file named', () => {
    assert.throws(() => loadKnowledgeBase('/nonexistent'), (e: unknown) => e instanceof KnowledgeError && /sources\.json is missing/.test(e.message));
  });
});

describe('intake agent', () => {
  it('reads lay terms and misspellings', () => {
    assert.ok(has(intake('he keeps throwing up'), 'vomiting', true));
    assert.ok(has(intake('vomitting since yesterday'), 'vomiting', true));
  });

  it('respects negation: "no vomiting", "hasn\'t vomited", "not drinking more than usual"', () => {
    assert.ok(has(intake('No vomiting at all.'), 'vomiting', false));
    assert.ok(has(intake("She hasn't been throwing up."), 'vomiting', false));
    assert.ok(has(intake('not throwing up but scratching his ears'), 'vomiting', false));
    const mixed = intake('No vomiting yesterday. Vomited twice this morning.');
    assert.ok(has(mixed, 'vomiting', true), 'present wins over an earlier absence');
    const scoped = intake('no vomiting but lots of diarrhoea');
    assert.ok(has(scoped, 'vomiting', false));
    assert.ok(has(scoped, 'diarrhoea', true), '"but" ends the negation');
  });

  it('a negation inside a matched phrase negates nothing after it; a comma ends a negation', () => {
    const f = intake('not eating and vomiting');
    assert.ok(has(f, 'inappetence', true));
    assert.ok(has(f, 'vomiting', true));
    assert.ok(has(intake('no vomiting or diarrhoea'), 'diarrhoea', false), 'a list after one negation is negated');
    assert.ok(has(intake("hasn't had his jabs, bloody diarrhoea since yesterday"), 'haemorrhagic_diarrhoea', true));
    assert.ok(!intake('normally fit and well').some((x) => x.code === 'seizures'));
  });

  it('reads durations where stated', () => {
    const f = intake('Diarrhoea for 3 days.').find((x) => x.code === 'diarrhoea');
    assert.equal(f?.durationDays, 3);
    assert.equal(intake('been throwing up for two weeks').find((x) => x.code === 'vomiting')?.durationDays, 14);
  });

  it('links each finding to the phrase it came from', () => {
    const text = 'My dog is throwing up';
    const f = intake(text).find((x) => x.code === 'vomiting')!;
    assert.equal(f.source.kind, 'complaint');
    assert.equal(text.slice(f.source.start, f.source.end), f.source.text);
  });

  it('turns vitals into findings against the species range', () => {
    const out = runIntake(lexicon, kb, { species: 'dog', complaint: '', signs: [], vitals: { temperatureC: 41.2, mucousMembranes: 'pale' } }).findings;
    assert.ok(out.some((f) => f.present && f.source.kind === 'vital' && f.source.ref === 'temperatureC'));
    assert.ok(has(out, 'pale_mucous_membranes', true));
  });

  it('property: never throws and every span points into the complaint', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        for (const f of intake(text)) {
          if (f.source.kind === 'complaint') assert.equal(text.slice(f.source.start, f.source.end), f.source.text);
        }
      }),
    );
  });

  it('property: one edit apart is symmetric and exact words are always within it', () => {
    fc.assert(fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => assert.equal(withinOneEdit(a, b), withinOneEdit(b, a))));
    fc.assert(fc.property(fc.string({ maxLength: 12 }), (a) => assert.ok(withinOneEdit(a, a))));
  });
});

describe('labs agent', () => {
  it('converts SI to US units and flags against the species interval', () => {
    const out = runLabs(kb, 'dog', [
      { analyte: 'glucose', value: 25, unit: 'mmol/L' },
      { analyte: 'creatinine', value: 350, unit: 'µmol/L' },
      { analyte: 'alt', value: 40, unit: 'U/L' },
    ]);
    const glucose = out.results.find((r) => r.analyte === 'glucose')!;
    assert.equal(glucose.flag, 'high');
    assert.ok(glucose.valueUS > 400 && glucose.valueUS < 500);
    assert.ok(has(out.findings, 'hyperglycaemia', true));
    assert.ok(has(out.findings, 'azotemia', true));
    assert.equal(out.results.find((r) => r.analyte === 'alt')!.flag, 'normal');
  });

  it('keeps an analyte it does not know as not interpreted, never dropped', () => {
    const out = runLabs(kb, 'cat', [{ analyte: 'fructosamine_x', value: 3, unit: 'mmol/L' }]);
    assert.deepEqual(out.notInterpreted.map((n) => n.analyte), ['fructosamine_x']);
  });

  it('names the field of a known analyte in a unit that cannot be converted', () => {
    const problems = labUnitProblems(kb, [{ analyte: 'glucose', value: 5, unit: 'mmol/L' }, { analyte: 'glucose', value: 5, unit: 'furlongs' }]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[1].unit']);
  });

  it('reads a unitless result without a unit and a number sent as a string; names value or unit when it cannot', () => {
    const out = runLabs(kb, 'dog', [
      { analyte: 'usg', value: 1.008 },
      { analyte: 'creatinine', value: '3.1', unit: 'mg/dL' },
      { analyte: 'urine_protein', value: '2+' },
    ]);
    assert.deepEqual(out.notInterpreted, []);
    assert.deepEqual(out.results.map((r) => [r.analyte, r.valueUS]), [['usg', 1.008], ['creatinine', 3.1], ['urine_protein', kb.analytes.get('urine_protein')!.scale!['2+']]]);
    assert.ok(has(out.findings, 'azotemia', true));
    const problems = labUnitProblems(kb, [
      { analyte: 'creatinine', value: 'high', unit: 'mg/dL' },
      { analyte: 'creatinine', value: 3.1 },
      { analyte: 'usg', value: 'clear', unit: '' },
      { analyte: 'usg', value: 1.02, unit: '' },
    ]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[0].value', 'labs[1].unit', 'labs[2].value']);
    assert.match(problems[1]!.problem, /needs its unit: mg\/dL or [µu]mol\/L/);
  });

  it('reads a dipstick as a grade or as the concentration the strip prints, in either unit', () => {
    const grade = (analyte: string, value: number | string, unit: string) => runLabs(kb, 'cat', [{ analyte, value, unit }]).results[0]?.valueUS;
    const scale = kb.analytes.get('urine_glucose')!.scale!;
    assert.equal(grade('urine_glucose', '2+', 'grade'), scale['2+']);
    assert.equal(grade('urine_glucose', 500, 'mg/dL'), scale['2+']);
    assert.equal(grade('urine_glucose', 28, 'mmol/L'), scale['2+']);
    assert.equal(grade('urine_glucose', 55, 'mmol/l'), scale['3+']);
    assert.equal(grade('urine_glucose', 111, 'mmol/L'), scale['4+']);
    assert.equal(grade('urine_glucose', 3000, 'mg/dL'), scale['4+']);
    assert.equal(grade('urine_glucose', 0, 'mmol/L'), scale.negative);
    // Between two blocks: the one it reaches; under the lowest: the lowest positive grade.
    assert.equal(grade('urine_ketones', 60, 'mg/dL'), scale['2+']);
    assert.equal(grade('urine_protein', 10, 'mg/dL'), scale.trace);
    assert.equal(grade('urine_protein', 1, 'g/L'), scale['2+']);
    const glucosuria = runLabs(kb, 'dog', [{ analyte: 'urine_glucose', value: 1000, unit: 'mg/dL' }]);
    assert.ok(has(glucosuria.findings, 'glucosuria', true));
    // A number in a unit no strip prints, or a negative one, is still a clear problem on its field.
    const problems = labUnitProblems(kb, [
      { analyte: 'urine_glucose', value: 500, unit: 'mg/dL' },
      { analyte: 'urine_glucose', value: 500, unit: 'g/L' },
      { analyte: 'urine_ketones', value: -1, unit: 'mmol/L' },
    ]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[1].unit', 'labs[2].value']);
    assert.match(problems[0]!.problem, /printed concentration in mg\/dL or mmol\/L/);
  });
});

describe('labs agent: analytes by name or LOINC code, units by UCUM code', () => {
  const one = (species: 'dog' | 'cat', analyte: string, value: number | string, unit?: string) => runLabs(kb, species, [{ analyte, value, ...(unit === undefined ? {} : { unit }) }]);

  it('reads an analyte by its LOINC code or a name laboratories use, saying what it was sent as', () => {
    const out = runLabs(kb, 'dog', [
      { analyte: '2160-0', value: 3.1, unit: 'mg/dL' },
      { analyte: '14682-9', value: 274, unit: 'umol/L' },
      { analyte: 'ALT', value: 40, unit: 'U/L' },
      { analyte: 'SGPT', value: 40, unit: 'U/L' },
      { analyte: 'Total Bilirubin', value: 0.2, unit: 'mg/dL' },
      { analyte: 'K+', value: 8.1, unit: 'mEq/L' },
      { analyte: '2823-3', value: 8.1, unit: 'meq/L' },
    ]);
    assert.deepEqual(out.notInterpreted, []);
    assert.deepEqual(out.results.map((r) => r.analyte), ['creatinine', 'creatinine', 'alt', 'alt', 'total_bilirubin', 'potassium', 'potassium']);
    assert.deepEqual(out.results.map((r) => r.loinc ?? null), ['2160-0', '14682-9', null, null, null, null, '2823-3']);
    assert.equal(out.results[2]!.sentAs, 'ALT');
    assert.equal(out.results[0]!.valueUS, 3.1);
    assert.ok(Math.abs(out.results[1]!.valueUS - 3.1) < 0.01);
    assert.ok(has(out.findings, 'azotemia', true) && has(out.findings, 'hyperkalaemia', true));
  });

  it('reads urea (as European laboratories report it) as urea nitrogen: mmol/L as they are, a mass by the ratio of the molecular weights', () => {
    const bun = (value: number | string, unit: string, analyte = 'Urea') => one('dog', analyte, value, unit).results[0]!;
    const uk = bun(25, 'mmol/L');
    assert.deepEqual([uk.analyte, uk.sentAs, uk.flag], ['bun', 'Urea', 'high']);
    assert.equal(uk.valueUS, Math.round((25 / 0.357) * 1000) / 1000);
    assert.ok(Math.abs(bun(150, 'mg/dL').valueUS - 69.96) < 0.01, 'urea 150 mg/dL is urea nitrogen 70 mg/dL');
    assert.ok(Math.abs(bun(1.5, 'g/L', 'urea').valueUS - 69.96) < 0.01);
    assert.equal(bun(70, 'mg/dL', 'BUN').valueUS, 70, 'urea nitrogen itself is not scaled');
    assert.ok(has(one('dog', 'urea', 25, 'mmol/L').findings, 'azotemia', true));
  });

  it('keeps an unknown LOINC code as not interpreted; a wrong check digit is a problem on labs[i].analyte', () => {
    const out = one('cat', '12345-5', 3, 'mg/dL');
    assert.deepEqual(out.notInterpreted.map((n) => n.analyte), ['12345-5']);
    assert.match(out.notInterpreted[0]!.reason, /LOINC code the knowledge base does not interpret/);
    assert.deepEqual(labUnitProblems(kb, [{ analyte: '12345-5', value: 3, unit: 'mg/dL' }, { analyte: 'mystery_marker', value: 1, unit: 'U/L' }]), []);
    const problems = labUnitProblems(kb, [{ analyte: '2160-0', value: 1, unit: 'mg/dL' }, { analyte: '2160-1', value: 1, unit: 'mg/dL' }]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[1].analyte']);
    assert.match(problems[0]!.problem, /check digit/);
  });

  it('checks the unit against the family a LOINC code implies, reading a mass code sent in moles (and back) where the value converts', () => {
    const problems = labUnitProblems(kb, [
      { analyte: '2160-0', value: 274, unit: 'umol/L' },
      { analyte: '14682-9', value: 3.1, unit: 'mg/dL' },
      { analyte: '1742-6', value: 40, unit: 'mg/dL' },
      { analyte: '2823-3', value: 4.5, unit: 'mmol/L' },
      { analyte: '5792-7', value: 500, unit: 'mmol/L' },
      { analyte: '2345-7', value: 25, unit: 'mmol/L' },
    ]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[2].unit', 'labs[4].unit']);
    assert.match(problems[0]!.problem, /LOINC 1742-6 is a catalytic result; "mg\/dL" is mass/);
    // The converted value is the same as under the molar code: 274 µmol/L of creatinine is 3.1 mg/dL.
    const labs = runLabs(kb, 'dog', [{ analyte: '2160-0', value: 274, unit: 'umol/L' }, { analyte: '2345-7', value: 25, unit: 'mmol/L' }]);
    const byAnalyte = Object.fromEntries(labs.results.map((r) => [r.analyte, r.valueUS]));
    assert.ok(Math.abs(byAnalyte.creatinine! - 3.1) < 0.05, JSON.stringify(labs.results));
    assert.ok(Math.abs(byAnalyte.glucose! - 450) < 5, JSON.stringify(labs.results));
  });

  it('property: every LOINC code in the knowledge base passes its check digit, resolves to its analyte, and no other check digit does', () => {
    const codes = [...kb.analytes.values()].flatMap((a) => (a.loinc ?? []).map((l) => [l.code, a.analyte] as const));
    assert.ok(codes.length >= 30);
    for (const [code, analyte] of codes) {
      assert.ok(loincCheckDigitOk(code), code);
      const ref = resolveAnalyte(kb, code);
      assert.ok(ref !== undefined && ref !== 'bad-loinc' && ref.analyte.analyte === analyte, code);
    }
    fc.assert(
      fc.property(fc.constantFrom(...codes.map(([c]) => c)), fc.integer({ min: 1, max: 9 }), (code, shift) => {
        const [num, check] = code.split('-') as [string, string];
        assert.equal(loincCheckDigitOk(`${num}-${(Number(check) + shift) % 10}`), false);
      }),
    );
  });

  it('converts UCUM codes and display forms of one unit family alike, and across families by the SI factor', () => {
    const us = (analyte: string, value: number | string, unit?: string) => one('dog', analyte, value, unit).results[0]?.valueUS;
    for (const unit of ['10*3/uL', 'x10^3/uL', '10^9/L', '10*9/L', 'x10⁹/L', 'x10E9/L', 'K/uL', 'G/L', 'G/l', 'Gpt/l', '/nL', '10^3/µL', 'thou/uL']) assert.equal(us('wbc', 12, unit), 12, unit);
    assert.equal(us('total_protein', 65, 'g/l'), 6.5, 'lower-case g is grams, upper-case G giga');
    // The laboratory's own high/low flag after the number is not part of the value.
    assert.equal(us('glucose', '320 H', 'mg/dL'), 320);
    assert.equal(us('glucose', '320 mg/dL HH'), 320);
    assert.equal(us('glucose', '40*', 'mg/dL'), 40);
    assert.equal(us('potassium', '3.1 L', 'mmol/L'), 3.1);
    // A decimal comma is read; three digits after a comma could be thousands, so that is asked again.
    assert.equal(us('glucose', '5,55', 'mmol/L'), 100);
    assert.equal(us('glucose', '100,5 mg/dL'), 100.5);
    const comma = labUnitProblems(kb, [{ analyte: 'usg', value: '1,025' }, { analyte: 'platelets', value: '250,000', unit: '/uL' }, { analyte: 'urine_glucose', value: '1,000', unit: 'mg/dL' }]);
    assert.deepEqual(comma.map((p) => p.field), ['labs[0].value', 'labs[1].value', 'labs[2].value']);
    assert.match(comma[0]!.problem, /decimal comma or a thousands separator/);
    assert.equal(us('wbc', 12000, '/uL'), 12);
    assert.equal(us('wbc', 12, '10³/mm³'), 12);
    assert.equal(us('wbc', 12000, '{cells}/uL'), 12);
    assert.equal(us('rbc', 7, '10*12/L'), 7);
    assert.equal(us('hematocrit', 0.45, 'L/L'), 45);
    assert.equal(us('alt', 40, '[IU]/L'), 40);
    assert.equal(us('alt', 0.5, 'ukat/L'), 30);
    assert.equal(us('total_protein', 65, 'g/L'), 6.5);
    assert.equal(us('glucose', 1000, 'mg/L'), 100);
    assert.equal(us('t4', 2.5, 'ug/dL'), 2.5);
    assert.equal(us('usg', 1.02, '1'), 1.02);
    assert.equal(us('usg', 1.02, '{ratio}'), 1.02);
    assert.equal(us('creatinine', '88.4 umol/L'), 1);
    assert.equal(us('lactate', '<0.5', 'mmol/L'), Math.round((0.5 / 0.111) * 1000) / 1000);
    const high = one('dog', 'glucose', '>600', 'mg/dL').results[0]!;
    assert.deepEqual([high.flag, high.interval.source], ['high', 'cornell_chem_2017']);
    const problems = labUnitProblems(kb, [{ analyte: 'glucose', value: '5.4 mg/dL', unit: 'mmol/L' }, { analyte: 'wbc', value: 12, unit: 'mg/dL' }, { analyte: 'magnesium', value: 2, unit: 'furlongs' }, { analyte: 'wbc', value: 1e300, unit: '/pL' }]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[0].value', 'labs[1].unit', 'labs[2].unit', 'labs[3].value']);
    // No analyte is ever below zero, and none is a trillion in its own unit (the answer's rounding would overflow).
    const unreal = labUnitProblems(kb, [{ analyte: 'glucose', value: -5, unit: 'mg/dL' }, { analyte: 'upc', value: -1.797693134862316e305 }, { analyte: 'upc', value: 1e305 }, { analyte: 'upc', value: 0 }]);
    assert.deepEqual(unreal.map((p) => p.field), ['labs[0].value', 'labs[1].value', 'labs[2].value']);
    assert.match(unreal[0]!.problem, /cannot be negative/);
  });

  it('reads magnesium in mg/dL, as many US laboratories report it, through its molar mass', () => {
    const mg = one('dog', '19123-9', 2.4, 'mg/dL').results[0]!;
    assert.deepEqual([mg.analyte, mg.loinc, mg.interval.unit], ['magnesium', '19123-9', 'mEq/L']);
    assert.ok(Math.abs(mg.valueUS - (24 / 24.305) * 2) < 0.001, String(mg.valueUS));
    assert.equal(one('dog', 'Mg', 1.0, 'mmol/L').results[0]!.valueUS, 2);
    // The mass code sent with a molar value is read, not refused (the value converts).
    assert.equal(one('dog', '19123-9', 1.0, 'mmol/L').results[0]!.valueUS, 2);
  });

  it('property: a value in the SI unit (UCUM spelling) reads as the same value in the US unit', () => {
    const quantitative = [...kb.analytes.values()].filter((a) => a.siFactor !== null && a.scale === undefined && (a.dog ?? a.cat) !== undefined && a.unitSI !== a.unitUS);
    assert.ok(quantitative.length >= 20);
    const ucum = (unit: string) => unit.replace(/ \(urea\)$/, '').replace(/^x10\^/, '10*');
    fc.assert(
      fc.property(fc.constantFrom(...quantitative), fc.double({ min: 0.01, max: 1000, noNaN: true }), (a, value) => {
        const species = a.dog !== undefined ? 'dog' : 'cat';
        const viaSI = runLabs(kb, species, [{ analyte: a.analyte, value: value * a.siFactor!, unit: ucum(a.unitSI) }]).results[0];
        assert.ok(viaSI !== undefined, `${a.analyte} in ${ucum(a.unitSI)}`);
        // U/L <-> ukat/L converts by the unit's definition (1/60), the knowledge base rounds it to 0.01667: 2e-4 apart.
        assert.ok(Math.abs(viaSI.valueUS - value) <= 0.0015 + value * 3e-4, `${a.analyte}: ${viaSI.valueUS} vs ${value}`);
      }),
    );
  });

  it('reads a dipstick in every form strips report it: +/++ notation, neg/tr, words, the block concentration, a string with its unit', () => {
    const grade = (analyte: string, value: number | string, unit?: string) => one('cat', analyte, value, unit).results[0]?.valueUS;
    const scale = kb.analytes.get('urine_glucose')!.scale!;
    const ordinal: Array<[string, string]> = [['neg', 'negative'], ['Negative', 'negative'], ['NEG', 'negative'], ['-', 'negative'], ['tr', 'trace'], ['Trace', 'trace'], ['±', 'trace'], ['+', '1+'], ['++', '2+'], ['+++', '3+'], ['++++', '4+'], ['1+', '1+'], ['4+', '4+'], [' 2 + ', '2+'], ['+3', '3+'], ['Neg.', 'negative'], ['Tr.', 'trace']];
    for (const [value, expected] of ordinal) assert.equal(grade('urine_glucose', value), scale[expected], value);
    const pads: Array<[string, number[]]> = [['urine_glucose', [100, 250, 500, 1000, 2000]], ['urine_ketones', [5, 15, 40, 80, 160]], ['urine_protein', [30, 100, 300, 2000]]];
    for (const [analyte, blocks] of pads) {
      const grades = blocks.map((b) => grade(analyte, b, 'mg/dL')!);
      assert.deepEqual(grades, [...grades].sort((a, b) => a - b), `${analyte}: one step up the scale per block`);
      assert.equal(new Set(grades).size, blocks.length, analyte);
      assert.equal(grades.at(-1), scale['4+'], analyte);
      assert.equal(grade(analyte, 0, 'mg/dL'), scale.negative, analyte);
    }
    assert.equal(grade('urine_protein', 30, 'mg/dL'), scale['1+']);
    assert.equal(grade('urine_glucose', '500 mg/dL'), scale['2+']);
    assert.equal(grade('urine_glucose', '≥2000 mg/dL'), scale['4+']);
    assert.equal(grade('urine_glucose', '>=2000', 'mg/dL'), scale['4+']);
    assert.equal(grade('urine_protein', '1+ (30 mg/dL)'), scale['1+']);
    assert.equal(grade('5792-7', 250, 'mg/dL'), scale['1+']);
    assert.equal(grade('5797-6', 'moderate'), scale['2+']);
    assert.equal(grade('urine_ketones', 'Small'), scale['1+']);
    assert.equal(grade('urine_blood', 'large'), scale['3+']);
    assert.equal(grade('urine_blood', 'positive'), scale.trace, 'a qualitative positive is at least the lowest positive grade');
    const blood = one('dog', '5794-3', 'Positive');
    assert.ok(has(blood.findings, 'urine_blood_positive', true));
    const problems = labUnitProblems(kb, [
      { analyte: 'urine_glucose', value: 'small' },
      { analyte: 'urine_glucose', value: 'lots' },
      { analyte: 'urine_protein', value: 7 },
      { analyte: '5794-3', value: 50, unit: 'mg/dL' },
      { analyte: 'urine_glucose', value: '++' },
      { analyte: 'urine_blood', value: 50, unit: 'ery/uL' },
    ]);
    assert.deepEqual(problems.map((p) => p.field), ['labs[0].value', 'labs[1].value', 'labs[2].value', 'labs[3].unit', 'labs[5].unit']);
    assert.match(problems[4]!.problem, /no strip chart in the knowledge base maps a Urine blood\/haem \(dipstick\) concentration \("ery\/uL"\)/);
    assert.match(problems[0]!.problem, /must be a grade .*\+, \+\+, neg, tr.* or a strip's printed concentration/);
  });

  it('property: any analyte, value and unit a client may send is read or named as a problem on one field, never thrown', () => {
    const names = [...kb.analyteIndex.keys()];
    const fields = new Set(['labs[0].analyte', 'labs[0].value', 'labs[0].unit']);
    const piece = fc.constantFrom('2+', '++', 'neg', 'trace', 'small', '500', '<0.5', '≥2000', 'mg/dL', 'mmol/L', '10*9/L', 'G/L', '{x}', ' H', '(', ')', '.', '-', 'e', 'µ');
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 }), fc.stringMatching(/^\d{1,6}-\d$/)),
        fc.oneof(fc.double({ noNaN: false }), fc.array(piece, { maxLength: 4 }).map((p) => p.join('')), fc.string({ maxLength: 20 })),
        fc.option(fc.oneof(fc.array(piece, { maxLength: 3 }).map((p) => p.join('')), fc.string({ maxLength: 20 })), { nil: undefined }),
        (analyte, value, unit) => {
          const lab = { analyte, value: value === '' ? ' ' : value, ...(unit === undefined ? {} : { unit }) };
          const problems = labUnitProblems(kb, [lab]);
          const out = runLabs(kb, 'dog', [lab]);
          assert.ok(problems.length <= 1 && problems.every((p) => fields.has(p.field)));
          assert.equal(out.results.length + out.notInterpreted.length, 1);
          for (const r of out.results) assert.ok(Number.isFinite(r.valueUS), JSON.stringify(lab));
          if (problems.length === 0 && resolveAnalyte(kb, analyte) !== undefined) assert.equal(out.results.length + out.notInterpreted.filter((n) => /reference interval/.test(n.reason)).length, 1, JSON.stringify(lab));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses at load a LOINC code with a wrong check digit or a property no unit of the analyte has', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-'));
    try {
      fs.cpSync(DEFAULT_KNOWLEDGE_DIR, dir, { recursive: true });
      const file = path.join(dir, 'lab-intervals.json');
      const original = fs.readFileSync(file, 'utf8');
      fs.writeFileSync(file, original.replace('"code": "2160-0"', '"code": "2160-1"'));
      assert.throws(() => loadKnowledgeBase(dir), (e: unknown) => e instanceof KnowledgeError && /LOINC 2160-1 fails its check digit/.test(e.message));
      fs.writeFileSync(file, original.replace(/("code": "2160-0",\s*"name": "[^"]*",\s*"unitFamily": )"mass"/, '$1"time"'));
      assert.throws(() => loadKnowledgeBase(dir), (e: unknown) => e instanceof KnowledgeError && /LOINC 2160-0 implies time/.test(e.message));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('plan agent safety checks', () => {
  it('blocks paracetamol and permethrin in a cat, with the reason and its source', () => {
    const plan = runPlan(kb, { species: 'cat', weightKg: 4, ageYears: 5, treatments: ['paracetamol', 'permethrin_spot_on'] }, [], undefined);
    assert.deepEqual(plan.blocked.map((b) => b.drug).sort(), ['paracetamol', 'permethrin_spot_on']);
    assert.ok(plan.blocked.every((b) => b.reason.length > 0 && b.source.length > 0));
    assert.equal(plan.treatments.length, 0);
  });

  it('blocks an NSAID in an azotaemic or dehydrated dog, allows it otherwise with a weight-based dose', () => {
    const azotaemic: FindingEvidence[] = [{ code: 'azotemia', present: true, source: { kind: 'lab', ref: 'creatinine' } }];
    const blocked = runPlan(kb, { species: 'dog', weightKg: 30, ageYears: 9, treatments: ['meloxicam'] }, azotaemic, undefined);
    assert.equal(blocked.blocked[0]?.drug, 'meloxicam');
    assert.match(blocked.blocked[0]!.because, /azotemia/);
    const dehydrated: FindingEvidence[] = [{ code: 'dehydration', present: true, source: { kind: 'sign', ref: 'dehydration' } }];
    assert.equal(runPlan(kb, { species: 'dog', weightKg: 30, ageYears: 9, treatments: ['meloxicam'] }, dehydrated, undefined).blocked[0]?.drug, 'meloxicam');
    const ok = runPlan(kb, { species: 'dog', weightKg: 30, ageYears: 9, treatments: ['meloxicam'] }, [], undefined);
    const dose = ok.treatments[0]!.doses.find((d) => d.perKg !== null)!;
    assert.equal(dose.total!.min, Math.round(dose.perKg!.min * 30 * 100) / 100);
  });

  it('gives the cited toxic doses of a reported exposure, scaled to the patient', () => {
    const exposed: FindingEvidence[] = [{ code: 'ate_xylitol', present: true, source: { kind: 'complaint', ref: 'complaint' } }];
    const plan = runPlan(kb, { species: 'dog', weightKg: 10, ageYears: 3, treatments: [] }, exposed, undefined);
    const note = plan.toxins.find((t) => t.toxin === 'xylitol')!;
    assert.ok(note.doses.length > 0 && note.doses.every((d) => d.source.length > 0));
    const lowest = Math.min(...note.doses.filter((d) => d.value !== null && d.unit.endsWith('/kg')).map((d) => d.value!));
    assert.equal(note.lowestAmountOfConcern!.value, Math.round(lowest * 10 * 100) / 100);
  });

  it('blocks two NSAIDs proposed together', () => {
    const plan = runPlan(kb, { species: 'dog', weightKg: 20, ageYears: 5, treatments: ['meloxicam', 'carprofen'] }, [], undefined);
    assert.equal(plan.blocked.length, 2);
  });
});

describe('orchestrator', () => {
  const registry = new AgentRegistry(kb, null, { default: 200, narrative: 200 });

  it('memoises agent instances per species and knowledge-base version', () => {
    assert.equal(registry.suite('dog'), registry.suite('dog'));
    assert.notEqual(registry.suite('dog'), registry.suite('cat'));
  });

  it('runs every agent, records the chain with input digests, and ranks a differential with evidence', async () => {
    const steps: string[] = [];
    const r = await orchestrate(registry, baseCase({ complaint: 'retching but nothing comes up, belly is swollen and tight, drooling', vitals: { heartRate: 170 } }), { onStep: (s) => steps.push(s.agent) });
    assert.deepEqual([...steps].sort(), ['differential', 'intake', 'labs', 'narrative', 'plan', 'triage']);
    assert.ok(steps.indexOf('differential') > steps.indexOf('intake') && steps.indexOf('narrative') === 5);
    assert.ok(r.steps.every((s) => /^[0-9a-f]{64}$/.test(s.inputDigest) && s.status === 'ok'));
    assert.equal(r.outputs.differential!.differentials[0]!.code, 'gastric_dilatation_volvulus');
    // An evidence item names its finding; the finding's source is in the findings, by code.
    const sourceOf = new Map(r.findings.map((f) => [f.code, f.source]));
    const top = r.outputs.differential!.differentials[0]!.evidence;
    assert.ok(top.some((e) => e.weight > 0 && e.source === undefined && sourceOf.get(e.finding)?.kind === 'complaint'));
    assert.ok(top.every((e) => (e.source === undefined) === sourceOf.has(e.finding)), 'a source inline only for signalment, which is not a finding');
    assert.equal(r.outputs.triage!.level, 'emergency');
    assert.match(r.outputs.narrative!.text, /^S: /);
  });

  it('a failing agent degrades the answer with a warning; a failed triage fails safe to emergency', async () => {
    const r = await orchestrate(registry, baseCase({ complaint: 'a bit itchy' }), {
      overrides: {
        triage: () => {
          throw new Error('boom');
        },
        plan: () => {
          throw new Error('bang');
        },
      },
    });
    assert.equal(r.outputs.triage!.level, 'emergency');
    assert.equal(r.outputs.plan, undefined);
    assert.ok(r.warnings.some((w) => /triage agent failed/.test(w)));
    assert.ok(r.warnings.some((w) => /plan agent failed/.test(w)));
    assert.ok(r.outputs.differential!.differentials.length > 0, 'the other agents still answered');
  });

  it("each step's duration is its own, even when a sibling ran first on the same thread", async () => {
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        /* a slow synchronous agent */
      }
    };
    // intake and labs are ready together; intake (first) takes 40 ms, labs next to nothing.
    const r = await orchestrate(registry, baseCase({ complaint: 'limping' }), {
      overrides: {
        intake: () => {
          busy(40);
          return { findings: [], unmatched: [] };
        },
      },
    });
    const duration = (agent: string) => r.steps.find((s) => s.agent === agent)!.durationMs;
    assert.ok(duration('intake') >= 40, `intake ${duration('intake')} ms`);
    assert.ok(duration('labs') < 20, `labs counted ${duration('labs')} ms, its sibling's time included`);
  });

  it('an agent that runs past its budget is cut off', async () => {
    const r = await orchestrate(registry, baseCase({ complaint: 'limping' }), { overrides: { differential: () => new Promise(() => undefined) } });
    assert.equal(r.steps.find((s) => s.agent === 'differential')!.status, 'timeout');
    assert.ok(r.warnings.some((w) => /differential agent did not finish within 200 ms/.test(w)));
    assert.ok(r.outputs.triage !== undefined);
  });
});

describe('narrative with an LLM provider (OpenAI-compatible, on loopback)', () => {
  let server: http.Server;
  let base: string;
  let delayMs = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const model = (JSON.parse(body) as { model: string }).model;
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [{ message: { content: `Rewritten by ${model}.` } }] })), delayMs);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('uses the LLM when it answers in time', async () => {
    delayMs = 0;
    const registry = new AgentRegistry(kb, new OpenAiCompatibleClient(base, 'test-model', 'k'), { default: 200, narrative: 500 });
    const r = await orchestrate(registry, baseCase({ complaint: 'coughing' }));
    assert.deepEqual(r.outputs.narrative, { text: 'Rewritten by test-model.', generator: 'llm' });
  });

  it('falls back to the template, with a warning, when it does not', async () => {
    delayMs = 400;
    const registry = new AgentRegistry(kb, new OpenAiCompatibleClient(base, 'test-model', undefined), { default: 200, narrative: 100 });
    const r = await orchestrate(registry, baseCase({ complaint: 'coughing' }));
    assert.equal(r.outputs.narrative!.generator, 'template');
    assert.ok(r.warnings.some((w) => /LLM narrative unavailable/.test(w)));
  });
});

it('topIndices ranks as a stable sort of every index would, ties in index order', () => {
  // Few distinct values, so ties are common.
  const values = fc.array(fc.integer({ min: 0, max: 5 }).map((v) => v / 5), { maxLength: 40 });
  fc.assert(
    fc.property(values, fc.integer({ min: 0, max: 13 }), (vs, count) => {
      const a = Float64Array.from(vs);
      const expected = Array.from({ length: a.length }, (_, k) => k).sort((x, y) => a[y]! - a[x]!).slice(0, count);
      assert.deepEqual(topIndices(a, count), expected);
    }),
    { numRuns: 500 },
  );
});
