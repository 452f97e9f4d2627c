/**
 * The agents' fast paths against the plain algorithms they replace: the typo index of the
 * lexicon against a scan of every long word, and the differential's precomputed tables against
 * scoring each condition from the knowledge base. Both must agree exactly, ties included.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DifferentialModel, UNLISTED_EXPOSURE_LIKELIHOOD, UNLISTED_LIKELIHOOD } from '../src/agents/differential.js';
import { Lexicon, MAX_GAPS, maxGaps, mergeFindings, runIntake, SKIPS, spanAt, tokenize, WEAK_STARTS, withinOneEdit, type Phrase, type Token } from '../src/agents/intake.js';
import { runLabs } from '../src/agents/labs.js';
import type { CaseInput, FindingEvidence } from '../src/agents/types.js';
import type { Condition } from '../src/knowledge/model.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from './vignettes/evaluate.js';

const kb = loadKnowledgeBase();
const lexicon = new Lexicon(kb);
// The private table the index is built from, read to give the scan the same words in the same order.
const longWords = (lexicon as unknown as { longWords: Map<string, string> }).longWords;
const phraseFirsts = (lexicon as unknown as { byFirst: Map<string, unknown> }).byFirst;

/** What the lexicon answered before the index: the first long word within one edit. */
function scan(word: string): { code: string; length: number; present: boolean; words: string[] } | null {
  for (const [candidate, code] of longWords) if (withinOneEdit(word, candidate)) return { code, length: 1, present: true, words: [word] };
  return null;
}

function oneEditVariants(w: string): string[] {
  const out = [w];
  for (let i = 0; i <= w.length; i++) {
    if (i < w.length) out.push(w.slice(0, i) + w.slice(i + 1), w.slice(0, i) + w[i] + w.slice(i), w.slice(0, i) + 'e' + w.slice(i + 1));
    if (i < w.length - 1) out.push(w.slice(0, i) + w[i + 1] + w[i] + w.slice(i + 2));
    out.push(w.slice(0, i) + 'e' + w.slice(i));
  }
  return out;
}

const matchWord = (word: string) => lexicon.match([{ word, raw: word, start: 0, end: word.length }], 0);

describe('lexicon typo index', () => {
  it('finds the same long word as a scan for every one-edit variant of every long word', () => {
    let compared = 0;
    for (const w of longWords.keys()) {
      for (const v of oneEditVariants(w)) {
        if (v.length < 7 || phraseFirsts.has(v)) continue;
        assert.deepEqual(matchWord(v), scan(v), v);
        compared++;
      }
    }
    assert.ok(compared > 10_000);
  });

  it('agrees with the scan on arbitrary words, near misses included', () => {
    // Two edits as well as one, so the index's candidates that fail the check are exercised too.
    const nearLong = fc.tuple(fc.constantFrom(...longWords.keys()), fc.nat(), fc.nat()).map(([w, i, j]) => {
      const once = oneEditVariants(w);
      const twice = oneEditVariants(once[i % once.length]!);
      return twice[j % twice.length]!;
    });
    fc.assert(
      fc.property(fc.oneof(fc.stringMatching(/^[aeinrst]{7,9}$/), nearLong), (v) => {
        if (v.length < 7 || phraseFirsts.has(v)) return;
        assert.deepEqual(matchWord(v), scan(v), v);
      }),
      { numRuns: 3000 },
    );
  });
});

type Across = { code: string; length: number; present: boolean; words: string[] } | null;
const lex = lexicon as unknown as {
  byFirst: Map<string, Phrase[]>;
  across(tokens: Token[], i: number, end: number): Across;
  passesOverPhrase(tokens: Token[], end: number, gaps: number): boolean;
};

/** A phrase matched across other words as found before the second-word index: every phrase of the first word tried. */
function acrossScan(tokens: Token[], i: number, end: number): Across {
  const word = tokens[i]!.word;
  if (WEAK_STARTS.has(word)) return null;
  let best: Phrase | undefined;
  let bestSpan = 0;
  let bestGaps = MAX_GAPS + 1;
  for (const p of lex.byFirst.get(word) ?? []) {
    if (p.words.length < 2 || (best !== undefined && p.words.length < best.words.length)) break;
    const span = spanAt(p, tokens, i, end, maxGaps(p));
    const gaps = SKIPS.gaps;
    if (span === 0 || gaps === 0 || gaps >= bestGaps || lex.passesOverPhrase(tokens, end, gaps)) continue;
    best = p;
    bestSpan = span;
    bestGaps = gaps;
  }
  return best === undefined ? null : { code: best.code, length: bestSpan, present: best.present, words: best.words };
}

describe('lexicon: phrases across other words', () => {
  const phraseWords = [...new Set([...lex.byFirst.values()].flat().flatMap((p) => p.words))];
  const texts = [...loadVignettes(), ...loadVignettes('test/vignettes/holdout-a.json'), ...loadVignettes('test/vignettes/holdout-b.json')].map((v) => v.request.complaint ?? '');
  const agree = (text: string) => {
    const tokens = tokenize(text);
    for (let i = 0; i < tokens.length; i++) assert.deepEqual(lex.across(tokens, i, tokens.length), acrossScan(tokens, i, tokens.length), `${text} @ ${i}`);
  };

  it('the second-word index finds what trying every phrase of the first word finds, on the vignettes', () => {
    for (const t of texts) agree(t);
  });

  it('and on word salads of vocabulary words, fillers and breaks', () => {
    const w = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...phraseWords) },
      { weight: 2, arbitrary: fc.constantFrom('her', 'the', 'left', 'a', 'bit', 'and', 'not', ',', 'when', 'dog', 'big', 'again') },
    );
    fc.assert(fc.property(fc.array(w, { minLength: 2, maxLength: 14 }), (words) => agree(words.join(' '))), { numRuns: 3000 });
  });
});

describe('lexicon: phrases matched whole', () => {
  // A second lexicon whose whole-match candidates are every phrase of the first word, as before the index.
  const plain = new Lexicon(kb);
  (plain as unknown as { wholeCandidates: (first: string, phrases: Phrase[]) => Phrase[] }).wholeCandidates = (_first, phrases) => phrases;
  const phraseWords = [...new Set([...lex.byFirst.values()].flat().flatMap((p) => p.words))];
  const texts = ['vignettes.json', 'holdout-a.json', 'holdout-b.json', 'holdout-c.json', 'holdout-d.json', 'holdout-e.json'].flatMap((f) => loadVignettes(`test/vignettes/${f}`)).map((v) => v.request.complaint ?? '');
  const agree = (text: string) => {
    const tokens = tokenize(text);
    for (let i = 0; i < tokens.length; i++) for (const end of [tokens.length, Math.min(tokens.length, i + 2)]) assert.deepEqual(lexicon.match(tokens, i, end), plain.match(tokens, i, end), `${text} @ ${i}..${end}`);
  };

  it('trying the phrases near the first word finds what trying every phrase of it finds, on every vignette set', () => {
    assert.ok(texts.length > 300);
    for (const t of texts) agree(t);
  });

  it('and on word salads of vocabulary words, fillers and breaks', () => {
    const w = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...phraseWords) },
      { weight: 2, arbitrary: fc.constantFrom('her', 'the', 'a', 'bit', 'and', 'of', 'his', 'up', ',', 'when', 'not', 'very', 'really') },
    );
    fc.assert(fc.property(fc.array(w, { minLength: 1, maxLength: 14 }), (words) => agree(words.join(' '))), { numRuns: 4000 });
  });
});

/** The differential's ranking computed directly: each condition's log score, in the same order of additions (a hedged finding at half weight). */
function reference(conditions: Condition[], exposure: ReadonlySet<string>, input: CaseInput, findings: FindingEvidence[]): Array<[string, number]> {
  const unlisted = (code: string) => kb.findings.get(code)?.unlistedLikelihood?.value ?? (exposure.has(code) ? UNLISTED_EXPOSURE_LIKELIHOOD : UNLISTED_LIKELIHOOD);
  const breed = input.breed?.toLowerCase() ?? '';
  const rows = conditions.map((c) => {
    const weights: number[] = [];
    const s = c.signalment;
    const b = breed === '' ? undefined : s?.breeds?.find((x) => breed.includes(x.breed.toLowerCase()) || x.breed.toLowerCase().includes(breed));
    if (b) weights.push(Math.log(Math.max(b.factor, 1e-9)));
    const age = input.ageYears;
    const band = age === null ? undefined : s?.age?.find((a) => (a.minYears === undefined || age >= a.minYears) && (a.maxYears === undefined || age < a.maxYears));
    if (band) weights.push(Math.log(Math.max(band.factor, 1e-9)));
    const sex = s?.sex?.find((x) => x.sex === input.sex && (x.neutered === undefined || x.neutered === input.neutered));
    if (sex) weights.push(Math.log(Math.max(sex.factor, 1e-9)));
    const likelihoods = new Map(c.findings.map((f) => [f.code, f.likelihood]));
    let logScore = Math.log(c.prior.value) + weights.reduce((sum, w) => sum + w, 0);
    for (const f of findings) {
      const l = likelihoods.get(f.code) ?? unlisted(f.code);
      logScore += (f.uncertain === true ? 0.5 : 1) * Math.log(f.present ? l : 1 - l);
    }
    return { code: c.code, logScore };
  });
  const max = Math.max(...rows.map((r) => r.logScore));
  const total = rows.reduce((sum, r) => sum + Math.exp(r.logScore - max), 0);
  return rows
    .map((r) => ({ code: r.code, p: Math.exp(r.logScore - max) / total }))
    .sort((a, b) => b.p - a.p)
    .slice(0, 10)
    .map((r) => [r.code, Math.round(r.p * 10000) / 10000]);
}

describe('differential tables', () => {
  const exposure = new Set([...kb.findings.values()].filter((f) => f.category === 'exposure').map((f) => f.code));
  const own = new Map([...kb.findings.values()].flatMap((f) => (f.unlistedLikelihood === undefined ? [] : [[f.code, f.unlistedLikelihood.value] as const])));
  const models = { dog: new DifferentialModel('dog', kb.conditions.dog, exposure, own), cat: new DifferentialModel('cat', kb.conditions.cat, exposure, own) };
  const vignettes = loadVignettes().map((v) => caseFromRequest(kb, v.request));
  const breeds = [null, '', 'retriever', ...new Set(Object.values(kb.conditions).flatMap((cs) => cs.flatMap((c) => c.signalment?.breeds?.map((b) => b.breed) ?? [])))];

  it('ranks exactly as scoring each condition directly, for the vignettes and varied signalment', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...vignettes),
        fc.constantFrom(...breeds),
        fc.option(fc.integer({ min: 0, max: 200 }).map((n) => n / 10)),
        fc.constantFrom<CaseInput['sex']>('male', 'female', 'unknown'),
        fc.constantFrom(true, false, null),
        fc.array(fc.record({ code: fc.constantFrom(...kb.findings.keys()), present: fc.boolean(), uncertain: fc.boolean() }), { maxLength: 12 }),
        (base, breed, ageYears, sex, neutered, extra) => {
          const input: CaseInput = { ...base, breed, ageYears, sex, neutered };
          const findings = mergeFindings([...runIntake(lexicon, kb, input).findings, ...runLabs(kb, input.species, input.labs).findings]);
          findings.push(...extra.map((e) => ({ ...e, source: { kind: 'sign' as const, ref: e.code } })));
          const out = models[input.species].run(input, findings);
          assert.equal(out.considered, kb.conditions[input.species].length);
          assert.deepEqual(
            out.differentials.map((d) => [d.code, d.probability]),
            reference(kb.conditions[input.species], exposure, input, findings),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
