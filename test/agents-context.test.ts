/**
 * Triage and intake in context (knowledge base 1.4, triage 1.2, intake 1.3): a vital sign the
 * settled diagnosis explains, a red flag the owner only compared or asked about beside the benign
 * event it describes, red flags by species, and comparisons, questions and "a bit" read as owners
 * mean them. Every rule that stops an escalation is checked from both sides: it must not stop the
 * same red flag stated plainly, a value past its limit, or a case the condition does not account for.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Lexicon, runIntake } from '../src/agents/intake.js';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import type { CaseInput, FindingEvidence } from '../src/agents/types.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';

const kb = loadKnowledgeBase();
const lexicon = new Lexicon(kb);
const registry = new AgentRegistry(kb, null, { default: 1000, narrative: 1000 });
const intake = (complaint: string, species: 'dog' | 'cat' = 'dog') => runIntake(lexicon, kb, { species, complaint, signs: [], vitals: {} }).findings;
const find = (fs: FindingEvidence[], code: string) => fs.find((f) => f.code === code);

function patient(species: 'dog' | 'cat', complaint: string, more: Partial<CaseInput> = {}): CaseInput {
  return { species, breed: null, ageYears: 4, sex: 'female', neutered: true, weightKg: species === 'dog' ? 20 : 4, complaint, signs: [], vitals: {}, labs: [], mediaIds: [], treatments: [], ...more };
}
const flagged = (r: Awaited<ReturnType<typeof orchestrate>>, name: string) => r.outputs.triage!.reasons.some((x) => x.level === 'emergency' && x.reason.startsWith(`Red flag (${name}`));

describe('triage: vital signs explained by a settled diagnosis', () => {
  const hyperthyroid = 'eats like a horse but losing weight, scruffy coat, yowls at night';
  const t4 = [{ analyte: 'total_t4', value: 95, unit: 'nmol/L' }];

  it("reads a hyperthyroid cat's heart rate of 240 as the disease's sign, not as shock", async () => {
    const r = await orchestrate(registry, patient('cat', hyperthyroid, { ageYears: 13, vitals: { heartRate: 240 }, labs: t4 }));
    assert.equal(r.outputs.differential?.differentials[0]?.code, 'hyperthyroidism');
    assert.equal(r.outputs.triage?.level, 'routine', JSON.stringify(r.outputs.triage?.reasons));
    assert.ok(r.outputs.triage!.reasons.some((x) => x.reason.includes('as Hyperthyroidism') && x.basis?.includes('rand_pbfm_2006')));
  });

  it('keeps a rate past the explained limit, an unexplained sign or an unsettled differential an emergency or urgent', async () => {
    const fast = await orchestrate(registry, patient('cat', hyperthyroid, { ageYears: 13, vitals: { heartRate: 270 }, labs: t4 }));
    assert.equal(fast.outputs.triage?.level, 'emergency');
    // Sudden blindness is not hyperthyroidism's: the case is more than the leading condition.
    const blind = await orchestrate(registry, patient('cat', `${hyperthyroid}, and since this morning she is bumping into walls`, { ageYears: 13, vitals: { heartRate: 240 }, labs: t4 }));
    assert.equal(blind.outputs.triage?.level, 'emergency', JSON.stringify(blind.outputs.triage?.reasons));
    // Without the T4 the differential is not settled enough to explain anything.
    const unsure = await orchestrate(registry, patient('cat', 'losing weight', { ageYears: 13, vitals: { heartRate: 240 } }));
    assert.equal(unsure.outputs.triage?.level, 'emergency');
    // A dyspnoeic hyperthyroid cat: the red flag stands whatever the heart rate is explained by.
    const breathless = await orchestrate(registry, patient('cat', `${hyperthyroid}, struggling to breathe`, { ageYears: 13, vitals: { heartRate: 240 }, labs: t4 }));
    assert.equal(breathless.outputs.triage?.level, 'emergency');
  });

  it("reads a hypothyroid dog's slow heart and cool temperature down to their limits only", async () => {
    const complaint = 'gained weight, slow and sleepy, lies by the radiator, bald patches on both sides';
    const labs = [{ analyte: 'total_t4', value: 7, unit: 'nmol/L' }, { analyte: 'cholesterol', value: 11.5, unit: 'mmol/L' }];
    const mild = await orchestrate(registry, patient('dog', complaint, { ageYears: 7, weightKg: 38, vitals: { heartRate: 56, temperatureC: 37.9 }, labs }));
    assert.equal(mild.outputs.differential?.differentials[0]?.code, 'hypothyroidism');
    assert.equal(mild.outputs.triage?.level, 'routine', JSON.stringify(mild.outputs.triage?.reasons));
    const slow = await orchestrate(registry, patient('dog', complaint, { ageYears: 7, weightKg: 38, vitals: { heartRate: 45 }, labs }));
    assert.equal(slow.outputs.triage?.level, 'emergency');
    const cold = await orchestrate(registry, patient('dog', complaint, { ageYears: 7, weightKg: 38, vitals: { temperatureC: 37.5 }, labs }));
    assert.equal(cold.outputs.triage?.level, 'emergency');
  });
});

describe('triage: a red flag only compared or asked about, beside the benign event it describes', () => {
  it('a reverse sneeze "like she can\'t breathe" is not dyspnoea; "she can\'t breathe" said plainly still is', async () => {
    const reverse = await orchestrate(registry, patient('dog', "she suddenly makes a loud snorting noise sucking air in, like she can't breathe, then she's totally normal", { breed: 'Pug' }));
    assert.ok(!flagged(reverse, 'Dyspnoea'), JSON.stringify(reverse.outputs.triage?.reasons));
    assert.equal(reverse.outputs.triage?.level, 'self-care');
    assert.ok(reverse.outputs.triage!.reasons.some((x) => x.reason.startsWith('Red flag (Dyspnoea) not raised')));
    const plain = await orchestrate(registry, patient('dog', "she makes a loud snorting noise and she can't breathe", { breed: 'Pug' }));
    assert.ok(flagged(plain, 'Dyspnoea'));
    assert.equal(plain.outputs.triage?.level, 'emergency');
    // A comparison with no benign event beside it is still flagged (only hedged, not dismissed).
    const alone = await orchestrate(registry, patient('dog', "she is breathing like she can't breathe"));
    assert.ok(flagged(alone, 'Dyspnoea'));
  });

  it('"is this a seizure?" about movements only in sleep is not a seizure; a seizure reported is', async () => {
    const sleep = await orchestrate(registry, patient('dog', 'When she is fast asleep her legs paddle and her lips twitch. If I say her name she wakes up straight away and is completely normal. Is this a seizure?', { ageYears: 1 }));
    assert.ok(!flagged(sleep, 'Seizures'), JSON.stringify(sleep.outputs.triage?.reasons));
    assert.notEqual(sleep.outputs.triage?.level, 'emergency');
    const awake = await orchestrate(registry, patient('dog', 'She had a seizure this morning, her legs were paddling. Is this epilepsy?', { ageYears: 1 }));
    assert.ok(flagged(awake, 'Seizures'));
    const asked = await orchestrate(registry, patient('dog', 'She went stiff and fell over. Is this a seizure?', { ageYears: 1 }));
    assert.ok(flagged(asked, 'Seizures'), 'a question about a seizure with no benign mimic is still flagged');
  });

  it('unproductive retching flags dogs (GDV), not cats, whose retching ends in a hairball', async () => {
    const cat = await orchestrate(registry, patient('cat', 'brought up a hairball after a bit of retching, normal since'));
    const dog = await orchestrate(registry, patient('dog', 'retching but nothing comes up'));
    assert.ok(!flagged(cat, 'Unproductive retching'));
    assert.ok(flagged(dog, 'Unproductive retching'));
  });
});

describe('intake: comparisons, questions and "a bit"', () => {
  it('hedges a finding after "like" + a clause, "as if" and in a yes/no question, not "dots like blackheads"', () => {
    assert.equal(find(intake("snorting, like she can't breathe"), 'dyspnoea')?.uncertain, true);
    assert.equal(find(intake("gasping as if she can't breathe"), 'dyspnoea')?.uncertain, undefined, 'gasping is said plainly');
    assert.equal(find(intake("she acts as if she can't breathe"), 'dyspnoea')?.uncertain, true);
    assert.equal(find(intake('Is this a seizure?'), 'seizures')?.uncertain, true);
    assert.equal(find(intake('He had a seizure. What should I do?'), 'seizures')?.uncertain, undefined, 'a question that opens with "what" hedges nothing');
    assert.equal(find(intake('little black dots like blackheads on his chin', 'cat'), 'chin_comedones')?.uncertain, undefined);
  });

  it('does not read "licking it a bit" as "licking his bits"', () => {
    assert.equal(find(intake('a small scrape on his pad, just licking it a bit'), 'licking_genitals'), undefined);
    assert.equal(find(intake('he keeps licking his bits'), 'licking_genitals')?.present, true);
  });

  it('reads the normal things owners ask about, and their look-alikes stay apart', () => {
    assert.equal(find(intake('There is a floppy flap of skin on her lower belly that swings from side to side', 'cat'), 'belly_skin_flap')?.present, true);
    assert.equal(find(intake('There is a floppy flap of skin on her lower belly', 'cat'), 'wound_laceration'), undefined);
    assert.equal(find(intake('she freezes with her mouth half open after sniffing my shoes', 'cat'), 'flehmen_response')?.present, true);
    assert.equal(find(intake('he treads his paws on my legs and drools when being cuddled', 'cat'), 'content_on_lap')?.present, true);
    assert.equal(find(intake('a thread wrapped round under her tongue', 'cat'), 'string_under_tongue')?.present, true);
    assert.equal(find(intake('he chewed open a blister pack of tablets'), 'papules_pustules'), undefined);
  });
});
