/** npm run eval [-- --verbose]: scores the diagnostic agents on test/vignettes/vignettes.json. */
import { evaluate } from '../test/vignettes/evaluate.js';

const verbose = process.argv.includes('--verbose');
const e = await evaluate();
if (verbose) {
  for (const r of e.results) {
    const mark = `${r.top1 ? 'T1' : r.top3 ? 'T3' : '--'} ${r.triageCorrect ? 'ok' : 'XX'}`;
    console.log(`${mark} ${r.id.padEnd(28)} expected ${r.expected.conditionCode} / ${r.expected.triage}; got ${r.top.map((t) => `${t.code} ${Math.round(t.probability * 100)}%`).join(', ')} / ${r.triage}`);
  }
  console.log('');
}
console.log(`vignettes             ${e.count} (${e.emergencies} emergencies)`);
console.log(`top-1 accuracy        ${(e.top1 * 100).toFixed(1)}%`);
console.log(`top-3 accuracy        ${(e.top3 * 100).toFixed(1)}%`);
console.log(`triage accuracy       ${(e.triageAccuracy * 100).toFixed(1)}%`);
console.log(`emergency sensitivity ${(e.emergencySensitivity * 100).toFixed(1)}%`);
console.log(`over-triage           ${(e.overTriage * 100).toFixed(1)}% of non-emergencies called emergency`);
console.log(`agents, mean per case ${e.meanMsPerCase} ms`);
