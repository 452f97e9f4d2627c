/**
 * Diagnostic quality on the shipped vignettes. The safety-critical properties are absolute;
 * the accuracy floors are the figures reported for this knowledge-base and agent version (see
 * `npm run eval`), so a change that makes the engine worse fails here.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { evaluate, loadVignettes, type Evaluation } from './vignettes/evaluate.js';

// Measured with `npm run eval` on knowledge base 1.1.0 and agents 1.0.0 (69 vignettes); triage
// raised 0.942 -> 0.957 with knowledge base 1.4 and triage 1.2 (a hyperthyroid cat's explained heart rate).
const FLOORS = { top1: 0.986, top3: 1, triageAccuracy: 0.957 };

describe('diagnostic quality on the vignettes', () => {
  let e: Evaluation;
  before(async () => {
    e = await evaluate();
  });

  it('ships at least 40 vignettes covering dogs and cats and all four triage levels', () => {
    const v = loadVignettes();
    assert.ok(v.length >= 40);
    for (const species of ['dog', 'cat']) assert.ok(v.some((x) => x.request.patient?.species === species));
    for (const level of ['emergency', 'urgent', 'routine', 'self-care']) assert.ok(v.some((x) => x.expected.triage === level), level);
  });

  it('triages every emergency vignette as an emergency', () => {
    const missed = e.results.filter((r) => r.expected.triage === 'emergency' && r.triage !== 'emergency').map((r) => `${r.id} -> ${r.triage}`);
    assert.deepEqual(missed, []);
    assert.equal(e.emergencySensitivity, 1);
  });

  it('stays at or above the reported accuracy', () => {
    assert.ok(e.top1 >= FLOORS.top1, `top-1 ${e.top1} < ${FLOORS.top1}`);
    assert.ok(e.top3 >= FLOORS.top3, `top-3 ${e.top3} < ${FLOORS.top3}`);
    assert.ok(e.triageAccuracy >= FLOORS.triageAccuracy, `triage ${e.triageAccuracy} < ${FLOORS.triageAccuracy}`);
  });
});

// The holdouts (issue 12 §4), written by people who read neither the knowledge base nor the
// tuned vignettes. Their floors are the figures reported on 2026-12-07 (knowledge base 1.2):
// holdouts A and B after they became training sets, holdout C as the fresh holdout, mapped
// before the engine was first run on it. Emergencies must all be triaged emergency on every set.
// Raised with intake 1.2.0 and knowledge base 1.2.1 (holdout B then a training set): A 75.0/80.0/81.7
// -> 76.7/80.0/83.3 %, B 85.9/92.2/75.0 -> 95.3/98.4/78.1 % top-1/top-3/triage.
// Raised with knowledge base 1.3 and intake 1.2.1 (holdout C then a training set), after A's 13 and
// C's 10 'not_in_kb' cases were re-mapped to the conditions the knowledge base has gained: A 98.3/100/83.3,
// C 56.3/71.9/62.5 -> 84.4/92.2/73.4 % (the figures are deterministic: the same on every run).
// Raised with knowledge base 1.4, triage 1.2 and intake 1.3 (holdout D then a training set: vital signs
// explained by a lab-confirmed diagnosis, red flags only compared or asked about beside their benign
// mimic, retching flagged in dogs only, D's vocabulary gaps): A triage 83.3 -> 88.3, B 78.1 -> 81.3,
// C 84.4/92.2/73.4 -> 85.9/93.8/75.0, D 70.3/84.4/68.8 -> 84.4/96.9/84.4 % top-1/top-3/triage (differential 1.3: an exposure outweighs the commonest priors).
const HOLDOUTS = [
  { file: 'holdout-a.json', floors: { top1: 0.983, top3: 1, triageAccuracy: 0.883 } },
  { file: 'holdout-b.json', floors: { top1: 0.953, top3: 0.984, triageAccuracy: 0.813 } },
  { file: 'holdout-c.json', floors: { top1: 0.859, top3: 0.938, triageAccuracy: 0.75 } },
  // Holdout D (written blind on 2026-12-07, reported at 70.3/84.4/68.8 %), a training set since.
  { file: 'holdout-d.json', floors: { top1: 0.844, top3: 0.969, triageAccuracy: 0.844 } },
];

describe('diagnostic quality on the holdouts', () => {
  const kb = loadKnowledgeBase();
  for (const { file, floors } of HOLDOUTS) {
    it(`${file}: no emergency under-triaged, accuracy at or above the reported figures`, async () => {
      const e = await evaluate(kb, loadVignettes(path.join(import.meta.dirname, 'vignettes', file)));
      assert.deepEqual(e.results.filter((r) => r.expected.triage === 'emergency' && r.triage !== 'emergency').map((r) => r.id), []);
      assert.ok(e.top1 >= floors.top1, `top-1 ${e.top1} < ${floors.top1}`);
      assert.ok(e.top3 >= floors.top3, `top-3 ${e.top3} < ${floors.top3}`);
      assert.ok(e.triageAccuracy >= floors.triageAccuracy, `triage ${e.triageAccuracy} < ${floors.triageAccuracy}`);
    });
  }
});
