/**
 * npm run eval [-- --file <vignettes.json>] [--verbose | --summary]
 *
 * Scores the diagnostic agents on a set of vignettes (default test/vignettes/vignettes.json, the
 * tuned set; any file in the same format, e.g. a holdout). Prints the figures and every case
 * missed at top-3, triaged differently from what was expected, or refused; --verbose lists every
 * case; --summary prints the figures alone (score a holdout without reading its misses, so that
 * nobody tunes on it by accident).
 */
import { parseArgs } from 'node:util';
import { evaluate, loadVignettes, type VignetteResult } from '../test/vignettes/evaluate.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';

const { values } = parseArgs({ options: { file: { type: 'string' }, verbose: { type: 'boolean', default: false }, summary: { type: 'boolean', default: false } } });
const e = await evaluate(loadKnowledgeBase(), values.file === undefined ? loadVignettes() : loadVignettes(values.file));

const line = (r: VignetteResult) => {
  const mark = `${r.top1 ? 'T1' : r.top3 ? 'T3' : '--'} ${r.triageCorrect ? 'ok' : 'XX'}`;
  const expected = `${r.expected.conditionCode}${r.expected.condition ? ` ("${r.expected.condition}")` : ''} / ${r.expected.triage}`;
  const got = r.refused !== undefined ? `refused: ${r.refused}` : `${r.top.map((t) => `${t.code} ${Math.round(t.probability * 100)}%`).join(', ')} / ${r.triage}`;
  return `${mark} ${r.id.padEnd(28)} expected ${expected}; got ${got}`;
};
const shown = values.summary ? [] : values.verbose ? e.results : e.results.filter((r) => !r.top3 || !r.triageCorrect);
if (shown.length > 0) {
  console.log(values.verbose ? 'every case:' : 'missed at top-3, triaged otherwise, or refused:');
  for (const r of shown) console.log(line(r));
  console.log('');
}
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
console.log(`vignettes             ${e.count} (${e.emergencies} emergencies)${values.file ? `, from ${values.file}` : ''}`);
console.log(`top-1 accuracy        ${pct(e.top1)}`);
console.log(`top-3 accuracy        ${pct(e.top3)}`);
console.log(`triage accuracy       ${pct(e.triageAccuracy)}`);
console.log(`emergency sensitivity ${pct(e.emergencySensitivity)} (${e.emergenciesUnderTriaged} emergencies under-triaged)`);
console.log(`over-triage           ${pct(e.overTriage)} of non-emergencies called emergency; ${pct(e.minorOverTriage)} of self-care/routine called urgent or emergency`);
console.log(`refused (422)         ${e.refused}`);
console.log(`agents, mean per case ${e.meanMsPerCase} ms`);
