/**
 * Intake: the owner's words and the clinician's structured signs and vitals, turned into
 * findings. Phrases come from the knowledge base (names, synonyms, lay terms, misspellings);
 * negation ("no vomiting", "hasn't vomited") and durations ("for 3 days") are read from the
 * clause around each phrase.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { KbSpecies } from '../knowledge/model.js';
import { assessDose, BELOW_TOXIC_DOSE, toxinSigns } from './toxicology.js';
import { referenceRangeApplies } from './triage.js';
import type { CaseInput, DoseAssessment, FindingEvidence, IntakeOutput } from './types.js';

export const INTAKE_VERSION = '1.3.0';

export interface Token {
  /** Stemmed, for vocabulary matching. */
  word: string;
  /** Lower-case with apostrophes dropped, for negation and durations. */
  raw: string;
  start: number;
  end: number;
  /** One of FILLERS (looked up once here, not per phrase tried). */
  filler?: boolean;
}

export interface Phrase {
  code: string;
  /** Stems of the term's words, fillers included. */
  words: string[];
  /** Per word: a filler that may be missing from the complaint (only in phrases of 2+ other words). */
  optional: boolean[];
  /**
   * Per word: the complaint's filler that stems to it may stand for it only when spelt the same:
   * "a bit" is not "bits" ("licking it a bit" is not "licking his bits").
   */
  raws: string[];
  /** False for a phrase that says the finding is absent ("eating fine"). */
  present: boolean;
  /** Position in its first word's list (longest first): ties between phrases go to the earlier. */
  rank: number;
}

/**
 * Words that may be skipped inside a phrase: in the complaint ("holding her back right leg up"
 * meets "holding her back leg up", "nose is all blocked" meets "nose is blocked") and in the
 * phrase ("holding his leg up" meets "holding leg up"). A match without skips is preferred, so
 * "in the heat" (heat exposure) and "in heat" (oestrus) stay apart. Only later words are skipped:
 * a phrase may start with one ("a cut").
 */
const FILLERS = new Set(['his', 'her', 'its', 'their', 'my', 'our', 'your', 'the', 'a', 'an', 'all', 'really', 'very', 'so', 'left', 'right', 'bit', 'little', 'slightly', 'quite']);
/** "won't stop scratching", "can't stop licking": the negation denies the stopping, not the sign. */
const NEGATION_CANCELLERS = new Set(['stop', 'stopp', 'help']);
/** Hedges before a finding in its clause ("maybe limping", "I think he was sick"). */
const HEDGES = new Set(['maybe', 'possibly', 'perhaps', 'might', 'think', 'unsure', 'probably', 'seemingly']);
/**
 * A comparison is the owner's picture, not an observation: "snorting, like she can't breathe",
 * "as if he's choking". Read as hedged: "like" only before a clause ("like she..."), as "dots like
 * blackheads" describes what was seen (raw words: "likes" is the verb).
 */
const SIMILES = new Set(['like']);
/** "as if", "as though": the second word, after "as". */
const SIMILE_SECOND = new Set(['if', 'though']);
/**
 * A question names what the owner fears, not what was seen: "Is this a seizure?", "Could it be a
 * hernia?". Findings of a sentence that ends in "?" and opens with one of these are hedged.
 */
const QUESTION_OPENERS = new Set(['is', 'are', 'was', 'were', 'could', 'can', 'might', 'may', 'should', 'would', 'does', 'do', 'did', 'has', 'have', 'will']);
const SUDDEN_ONSET = 'sudden_onset';
const CHRONIC_COURSE = 'chronic_course';
/** Engine parameters: days from which a course is chronic, and up to which it is acute. */
export const CHRONIC_DAYS = 21;
export const ACUTE_DAYS = 3;

const NEGATIONS = new Set([
  'no', 'not', 'never', 'without', 'denies', 'denied', 'deny', 'nor', 'neither', 'none', 'hasnt', 'hadnt', 'havent', 'isnt', 'wasnt', 'arent', 'werent',
  'didnt', 'doesnt', 'dont', 'wont', 'cant', 'cannot', 'nothing', 'negative',
]);
// Words (and the comma) that end a negation's reach inside a sentence. A comma ends it too:
// reading "not had his jabs, bloody diarrhoea" as no diarrhoea would hide a red flag, and a
// finding wrongly kept present is the safer error.
const SCOPE_BREAKS = new Set([',', 'but', 'however', 'although', 'though', 'except', 'yet', 'now', 'apart', 'still', 'then']);
const NEGATION_WINDOW = 5;
// "and" before a subject starts a new clause: in "no vomiting and she has diarrhoea" the "no" does
// not reach the diarrhoea (reading it absent would hide a sign, even a red flag).
const CLAUSE_SUBJECTS = new Set(['he', 'she', 'it', 'they', 'hes', 'shes', 'its', 'theyre', 'i', 'we', 'im', 'ive', 'weve']);

const NUMBERS: Record<string, number> = { a: 1, an: 1, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, couple: 2, few: 3, several: 4 };
const UNIT_DAYS: Record<string, number> = { minute: 1 / 1440, hour: 1 / 24, day: 1, night: 1, week: 7, month: 30, year: 365 };

const IRREGULAR: Record<string, string> = {
  been: 'be', being: 'be', was: 'be', is: 'be', were: 'be', are: 'be', ate: 'eat', eaten: 'eat', drank: 'drink', drunk: 'drink', threw: 'throw', thrown: 'throw',
  got: 'get', gotten: 'get', bitten: 'bite', fell: 'fall', fallen: 'fall', hit: 'hit', ran: 'run', swallowed: 'swallow', brought: 'bring', chewed: 'chew',
};

/**
 * Lower-case, apostrophes dropped, and a light stem (irregular verbs, -ing, -ed, -es, -s) so
 * "been sick" meets "being sick" and "scratches" meets "scratching". Numbers pass through.
 */
function plain(w: string): string {
  return w.toLowerCase().replace(/[’'`]/g, '');
}

/** Drops a doubled last letter ("stopp" → "stop"), as left by removing -ing or -ed. */
function undouble(w: string): string {
  return w.length >= 2 && w[w.length - 1] === w[w.length - 2] ? w.slice(0, -1) : w;
}

/** The stem of a word already passed through plain(). */
function stem(word: string): string {
  const irregular = IRREGULAR[word];
  if (irregular !== undefined) return irregular;
  if (word.length > 5 && word.endsWith('ing')) return undouble(word.slice(0, -3));
  if (word.length > 4 && word.endsWith('ied')) return `${word.slice(0, -3)}y`;
  if (word.length > 4 && word.endsWith('ed')) return undouble(word.slice(0, -2));
  if (word.length > 4 && (word.endsWith('sses') || word.endsWith('shes') || word.endsWith('ches') || word.endsWith('xes'))) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us') && !word.endsWith('is')) return word.slice(0, -1);
  return word;
}

const TOKEN = /[A-Za-zÀ-ÿ0-9’'`]+|[.;!?,%]/g;

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  for (const m of text.matchAll(TOKEN)) {
    const raw = plain(m[0]);
    const word = stem(raw);
    if (word !== '') tokens.push({ word, raw, start: m.index!, end: m.index! + m[0].length, filler: FILLERS.has(raw) });
  }
  return tokens;
}

const PUNCTUATION = new Set(['.', ';', '!', '?', ',', '%']);

/**
 * A vocabulary term as matched: stems with punctuation dropped, and which words may be missing.
 * Fillers are optional only where two other words remain ("not right" needs both words, or "not"
 * alone would match).
 */
function termWords(term: string): { words: string[]; optional: boolean[]; raws: string[] } {
  const tokens = tokenize(term).filter((t) => !PUNCTUATION.has(t.word));
  const filler = tokens.map((t, k) => k > 0 && FILLERS.has(t.raw));
  const others = filler.filter((f) => !f).length;
  return { words: tokens.map((t) => t.word), optional: filler.map((f) => f && others >= 2), raws: tokens.map((t) => t.raw) };
}

/** All phrases of the vocabulary, longest first per first word. Built once per knowledge base. */
export class Lexicon {
  private readonly byFirst = new Map<string, Phrase[]>();
  /**
   * Phrases of two or more words by first word, then by the first word after it that the complaint
   * must hold (not an optional filler): a match across other words looks up only the phrases whose
   * second word is near, not every phrase of its first word.
   */
  private readonly bySecond = new Map<string, Map<string, Phrase[]>>();
  /**
   * Per first word, the phrases bySecond does not hold (one word, or every later word an optional
   * filler): a whole match tries these and the bySecond lists of the words near it, not every
   * phrase of its first word ("eat" starts hundreds).
   */
  private readonly unkeyed = new Map<string, Phrase[]>();
  /** Tokens after the first within which a phrase's required second word can lie. */
  private secondReach = 0;
  /** Single words of 7+ letters, for one-typo matching of words the vocabulary lacks. */
  private readonly longWords = new Map<string, string>();
  /** The long words in the order of longWords: a typo resolves to the earliest one it is near. */
  private readonly longList: Array<{ word: string; code: string }> = [];
  /**
   * Each long word and each of its one-letter deletions, to the positions (ascending) in
   * longList of the words giving that key. Two words one edit apart always share a key (a
   * transposition "ab"/"ba" shares the deletion of "a"), so the query's own keys reach every
   * word a scan of longWords would accept, without comparing against them all.
   */
  private readonly nearKeys = new Map<string, number[]>();

  constructor(kb: KnowledgeBase) {
    for (const f of kb.findings.values()) {
      const terms = [f.name, ...(f.synonyms ?? []), ...(f.layTerms ?? []), ...(f.misspellings ?? []), f.code.replace(/_/g, ' ')];
      const add = (term: string, present: boolean) => {
        const { words, optional, raws } = termWords(term);
        if (words.length === 0) return;
        const list = this.byFirst.get(words[0]!) ?? [];
        if (!list.some((p) => p.code === f.code && p.present === present && p.words.join(' ') === words.join(' '))) list.push({ code: f.code, words, optional, raws, present, rank: 0 });
        this.byFirst.set(words[0]!, list);
        if (present && words.length === 1 && words[0]!.length >= 7) this.longWords.set(words[0]!, f.code);
      };
      for (const term of terms) add(term, true);
      for (const term of f.absentTerms ?? []) add(term, false);
    }
    let maxK = 0;
    for (const [first, list] of this.byFirst) {
      list.sort((a, b) => b.words.length - a.words.length);
      const second = new Map<string, Phrase[]>();
      list.forEach((p, rank) => {
        p.rank = rank;
        const k = p.optional.findIndex((o, at) => at > 0 && !o);
        if (p.words.length < 2 || k < 0) {
          const always = this.unkeyed.get(first);
          if (always === undefined) this.unkeyed.set(first, [p]);
          else always.push(p);
          return;
        }
        maxK = Math.max(maxK, k);
        const key = p.words[k]!;
        const at = second.get(key);
        if (at === undefined) second.set(key, [p]);
        else at.push(p);
      });
      if (second.size > 0) this.bySecond.set(first, second);
    }
    this.secondReach = maxK + MAX_FILLER_RUN + MAX_GAPS;
    // Built from the finished map: a word set twice keeps its first position but its last code.
    for (const [word, code] of this.longWords) {
      const at = this.longList.push({ word, code }) - 1;
      for (let d = -1; d < word.length; d++) {
        const key = d < 0 ? word : word.slice(0, d) + word.slice(d + 1);
        const list = this.nearKeys.get(key);
        if (list === undefined) this.nearKeys.set(key, [at]);
        else if (list[list.length - 1] !== at) list.push(at);
      }
    }
  }

  /**
   * The longest phrase starting at token i (fillers inside it skipped), or an exact long word one
   * edit away. length counts the tokens spanned; present is false for an absent-term phrase.
   */
  match(tokens: Token[], i: number, end: number = tokens.length): { code: string; length: number; present: boolean; words: string[] } | null {
    const word = tokens[i]!.word;
    const phrases = this.byFirst.get(word);
    if (phrases !== undefined) {
      // The phrase spanning most tokens; on a tie, the one with fewest skipped fillers, then the first.
      // Phrases come longest first, and one can span at most its words plus the fillers ahead: the
      // scan stops once no later phrase could beat the best.
      let fillersAhead = 0;
      for (let j = i + 1, last = Math.min(end, i + phrases[0]!.words.length + MAX_FILLER_RUN); j < last; j++) if (tokens[j]!.filler === true) fillersAhead++;
      let best: Phrase | undefined;
      let bestSpan = 0;
      let bestSkips = 0;
      for (const p of this.wholeCandidates(word, phrases, tokens, i, end)) {
        const reach = p.words.length + fillersAhead;
        if (reach < bestSpan || (reach === bestSpan && bestSkips === 0)) break;
        const span = spanAt(p, tokens, i, end);
        if (span === 0) continue;
        const skips = SKIPS.n;
        if (span > bestSpan || (span === bestSpan && skips < bestSkips)) {
          best = p;
          bestSpan = span;
          bestSkips = skips;
        }
      }
      if (best !== undefined) return { code: best.code, length: bestSpan, present: best.present, words: best.words };
      // Failing that, a phrase of two or more words matched across a few other words of the complaint
      // ("won't put her left back leg down", "threw it up"): the most words, then the fewest
      // passed over, then the first. Only as a fallback: "caught his nail on the fence" stays a broken
      // nail rather than becoming "caught on the fence", and "weeing little bits in the bath" little bits.
      const gapped = this.across(tokens, i, end);
      if (gapped !== null) return gapped;
    }
    if (word.length >= 7) {
      const code = this.nearLongWord(word);
      if (code !== undefined) return { code, length: 1, present: true, words: [word] };
    }
    return null;
  }

  /**
   * The phrases of `first` (in rank order) that could match whole at token i: those without a
   * required second word, and those whose required second word is one of the tokens it could lie
   * on (at most its words plus a run of fillers ahead). Every phrase left out would span 0 there,
   * and ranks fall in word count, so match() picks the same phrase as from the whole list.
   */
  private wholeCandidates(first: string, phrases: Phrase[], tokens: Token[], i: number, end: number): Phrase[] {
    const second = this.bySecond.get(first);
    if (second === undefined) return phrases;
    const found: Phrase[][] = [];
    const always = this.unkeyed.get(first);
    if (always !== undefined) found.push(always);
    const last = Math.min(end - 1, i + phrases[0]!.words.length + MAX_FILLER_RUN);
    for (let j = i + 1; j <= last; j++) {
      const w = tokens[j]!.word;
      let seen = false;
      for (let q = i + 1; q < j && !seen; q++) seen = tokens[q]!.word === w;
      if (seen) continue;
      const list = second.get(w);
      if (list !== undefined) found.push(list);
    }
    if (found.length === 0) return [];
    if (found.length === 1) return found[0]!;
    return found.flat().sort((a, b) => a.rank - b.rank);
  }

  /**
   * The finding named by the words of a phrase with its last word replaced ("runny eyes and nose":
   * "runny" + "nose"), when the vocabulary has exactly that phrase.
   */
  exact(words: string[]): { code: string; present: boolean } | null {
    const list = this.byFirst.get(words[0]!);
    if (list === undefined) return null;
    for (const p of list) if (p.words.length === words.length && p.words.every((w, k) => w === words[k])) return { code: p.code, present: p.present };
    return null;
  }



  /**
   * The phrase of two or more words starting at token i and matched across other words of the
   * complaint (at least one), as match() takes it when none matches whole; null when none does.
   */
  private across(tokens: Token[], i: number, end: number): { code: string; length: number; present: boolean; words: string[] } | null {
    const word = tokens[i]!.word;
    const second = WEAK_STARTS.has(word) ? undefined : this.bySecond.get(word);
    let gapped: Phrase | undefined;
    let gappedSpan = 0;
    let gappedGaps = MAX_GAPS + 1;
    let others = 0;
    for (let j = i + 1, last = Math.min(end - 1, i + this.secondReach); second !== undefined && j <= last; j++) {
      for (const p of second.get(tokens[j]!.word) ?? []) {
        if (gapped !== undefined && (p.words.length < gapped.words.length || (p.words.length === gapped.words.length && p.rank > gapped.rank && gappedGaps === 1))) continue;
        const span = spanAt(p, tokens, i, end, maxGaps(p));
        const gaps = SKIPS.gaps;
        if (span === 0 || gaps === 0 || this.passesOverPhrase(tokens, end, gaps)) continue;
        const better = gapped === undefined || p.words.length > gapped.words.length || gaps < gappedGaps || (gaps === gappedGaps && p.rank < gapped.rank);
        if (!better) continue;
        gapped = p;
        gappedSpan = span;
        gappedGaps = gaps;
      }
      // A gap never crosses a break, and the words before the required one that are not fillers are
      // gaps: no required word lies beyond a break or the (MAX_GAPS + 1)th such word.
      if (GAP_BREAKS.has(tokens[j]!.raw) || (tokens[j]!.filler !== true && ++others > MAX_GAPS)) break;
    }
    return gapped === undefined ? null : { code: gapped.code, length: gappedSpan, present: gapped.present, words: gapped.words };
  }

  /**
   * Whether a word the last spanAt passed over starts a phrase of two or more words matched whole:
   * "were out walking in the heat" is heat exposure, not "was in heat" across "out walking".
   */
  private passesOverPhrase(tokens: Token[], end: number, gaps: number): boolean {
    const passed = SKIPS.at.slice(0, gaps);
    for (const at of passed) {
      for (const q of this.byFirst.get(tokens[at]!.word) ?? []) {
        if (q.words.length < 2) break;
        if (spanAt(q, tokens, at, end) > 0) return true;
      }
    }
    return false;
  }

  /** The code of the earliest long word within one edit of word, as a scan of longWords finds it. */
  private nearLongWord(word: string): string | undefined {
    let best = this.longList.length;
    for (let d = -1; d < word.length; d++) {
      const list = this.nearKeys.get(d < 0 ? word : word.slice(0, d) + word.slice(d + 1));
      if (list === undefined) continue;
      for (const at of list) {
        if (at >= best) break;
        if (withinOneEdit(word, this.longList[at]!.word)) {
          best = at;
          break;
        }
      }
    }
    return this.longList[best]?.code;
  }
}

/** At most this many fillers of the complaint are skipped within one phrase (bounds the search). */
const MAX_FILLER_RUN = 4;

/**
 * Words of the complaint other than fillers that a phrase of three or more words may pass over, in
 * all: "won't put her left back leg down" meets "won't put leg down" (one: "back"), "broken the tip
 * of one of her front nails" meets "broken tip of nail" (three). Never across a clause: GAP_BREAKS.
 */
export const MAX_GAPS = 3;

/** A two-word phrase passes over one word ("threw it up"): with more, "eating her dinner on the grass" would be eating grass. */
export const maxGaps = (p: Phrase): number => (p.words.length > 2 ? MAX_GAPS : 1);

/**
 * Words a phrase never passes over: punctuation, negations (the finding's presence would flip
 * unseen) and words that join or start another clause ("vomiting and has diarrhoea with blood" is
 * not vomiting blood).
 */
const GAP_BREAKS = new Set([
  ...PUNCTUATION, ...NEGATIONS, ...SCOPE_BREAKS,
  'and', 'or', 'when', 'while', 'because', 'after', 'before', 'since', 'until', 'if', 'also', 'plus', 'which', 'who',
]);

/** The fillers and other words skipped by the last spanAt (a module slot rather than an object per call). */
export const SKIPS = { n: 0, gaps: 0, at: [0, 0, 0] };

/**
 * First words too common to anchor a phrase matched across other words ("was in heat" would reach
 * "was out walking in heat"): such phrases match only whole or across fillers.
 */
export const WEAK_STARTS = new Set(['be', 'have', 'has', 'had', 'do', 'get', 'go', 'in', 'on', 'at', 'to', 'of', 'for', 'with', 'it', 'he', 'she', 'they', 'there', 'this', 'that', 'is', 'some', 'one', 'keep']);

/**
 * Tokens spanned by the phrase starting at i (fillers skipped on either side, and up to maxGaps
 * other words of the complaint between the phrase's words), or 0.
 */
export function spanAt(p: Phrase, tokens: Token[], i: number, end: number, maxGaps = 0): number {
  const words = p.words;
  if (tokens[i]?.word !== words[0]) return 0;
  let j = i + 1;
  let skips = 0;
  let gaps = 0;
  for (let k = 1; k < words.length; ) {
    if (j < end && tokens[j]!.word === words[k] && (tokens[j]!.filler !== true || p.raws[k] === tokens[j]!.raw)) {
      j++;
      k++;
    } else if (p.optional[k]) {
      k++;
      skips++;
    } else if (j < end && tokens[j]!.filler === true && j - i < words.length + MAX_FILLER_RUN + gaps) {
      j++;
      skips++;
    } else if (gaps < maxGaps && j < end && !GAP_BREAKS.has(tokens[j]!.raw)) {
      SKIPS.at[gaps] = j;
      j++;
      gaps++;
    } else return 0;
  }
  SKIPS.n = skips;
  SKIPS.gaps = gaps;
  return j - i;
}

/** Damerau-Levenshtein distance ≤ 1 (one insertion, deletion, substitution or transposition). */
export function withinOneEdit(a: string, b: string): boolean {
  if (a === b) return true;
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (a.length === b.length) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true;
    return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  return a.length > b.length ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

/** "once", "twice", "three times", "6 times" in the sentence. */
function countIn(tokens: Token[], from: number, to: number): number | undefined {
  for (let i = from; i < to; i++) {
    const w = tokens[i]!.raw;
    if (w === 'once') return 1;
    if (w === 'twice') return 2;
    if (w === 'thrice') return 3;
    if (tokens[i + 1]?.raw !== 'times' || i + 1 >= to) continue;
    const n = /^\d+$/.test(w) ? Number(w) : NUMBERS[w];
    if (n !== undefined) return n;
  }
  return undefined;
}

/** Before "few days", "2 hours", "a day": a frequency ("every few days", "twice a day"), not how long. */
const FREQUENCY_WORDS = new Set(['every', 'each', 'per', 'once', 'twice', 'thrice', 'times']);

function durationIn(tokens: Token[], from: number, to: number): number | undefined {
  for (let i = from; i < to; i++) {
    const w = tokens[i]!.raw;
    if (w === 'since') {
      const next = tokens.slice(i + 1, i + 3).map((t) => t.raw).join(' ');
      if (/^(this morning|last night|today|tonight)/.test(next)) return 0.5;
      if (/^yesterday/.test(next)) return 1;
    }
    const n = /^\d+$/.test(w) ? Number(w) : NUMBERS[w];
    if (n === undefined || (i > from && FREQUENCY_WORDS.has(tokens[i - 1]!.raw))) continue;
    let j = i + 1;
    if (tokens[j]?.raw === 'of') j++;
    const unit = tokens[j]?.raw.replace(/s$/, '');
    if (unit !== undefined && UNIT_DAYS[unit] !== undefined) return n * UNIT_DAYS[unit]!;
  }
  return undefined;
}

export function runIntake(
  lexicon: Lexicon,
  kb: KnowledgeBase,
  input: Pick<CaseInput, 'species' | 'complaint' | 'signs' | 'vitals' | 'vitalSources'> & { weightKg?: number | null; ageYears?: number | null },
): IntakeOutput & { warning?: string } {
  const found: FindingEvidence[] = [];
  const doses: DoseAssessment[] = [];
  const tokens = tokenize(input.complaint);
  const weightKg = input.vitals.weightKg ?? input.weightKg ?? null;
  // Sentences bound both negation and durations.
  const sentenceEnds: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const raw = tokens[i]!.raw;
    if (raw === '.' || raw === ';' || raw === '!' || raw === '?') sentenceEnds.push(i);
  }
  // Commas stay in the token stream as negation-scope breaks; the lexicon never spans one.
  sentenceEnds.push(tokens.length);
  let sentenceStart = 0;
  let words = 0;
  let courseDays: number | undefined;
  for (const end of sentenceEnds) {
    const matches: Array<{ code: string; at: number; length: number; present: boolean }> = [];
    for (let i = sentenceStart; i < end; ) {
      if (!PUNCTUATION.has(tokens[i]!.raw)) words++;
      const m = lexicon.match(tokens, i, end);
      if (m === null) {
        i++;
        continue;
      }
      matches.push({ code: m.code, at: i, length: m.length, present: m.present });
      i += m.length;
      // "runny eyes and nose": the phrase again with its last word replaced by the one after "and";
      // failing that, "eye is half shut and watering": its first word (the subject) with that word.
      while (m.length >= 2 && i + 1 < end && (tokens[i]!.raw === 'and' || tokens[i]!.raw === 'or')) {
        const head = m.words.slice(0, -1);
        const next = tokens[i + 1]!.word;
        const other = lexicon.exact([...head, next]) ?? (m.words.length > 2 ? lexicon.exact([m.words[0]!, next]) : null);
        if (other === null) break;
        matches.push({ code: other.code, at: i + 1, length: 1, present: other.present });
        i += 2;
      }
    }
    const duration = durationIn(tokens, sentenceStart, end);
    // "Been about a month.": a sentence giving only a duration tells how long the complaint has gone on.
    if (matches.length === 0 && duration !== undefined) courseDays ??= duration;
    const count = countIn(tokens, sentenceStart, end);
    // Onset words are vocabulary (sudden_onset: "suddenly", "out of nowhere"...), so the matches say it.
    const sudden = matches.some((m) => m.code === SUDDEN_ONSET && m.present);
    const asked = tokens[end]?.raw === '?' && QUESTION_OPENERS.has(tokens[sentenceStart]?.raw ?? '');
    // A negation word that is part of a matched phrase ("not eating") negates nothing after it.
    const inPhrase = new Set<number>();
    for (const m of matches) for (let k = m.at; k < m.at + m.length; k++) inPhrase.add(k);
    for (const m of matches) {
      let negated = false;
      let uncertain = asked;
      for (let k = m.at - 1; k >= Math.max(sentenceStart, m.at - NEGATION_WINDOW); k--) {
        const w = tokens[k]!.raw;
        if (SCOPE_BREAKS.has(w)) break;
        if (w === 'and' && CLAUSE_SUBJECTS.has(tokens[k + 1]?.raw ?? '')) break;
        // A phrase that says a finding is absent ("eats fine") is not negated across another
        // finding: in "no vomiting and she eats fine" the "no" is the vomiting's.
        if (!m.present && inPhrase.has(k)) break;
        if (HEDGES.has(w) || (w === 'not' && tokens[k + 1]?.raw === 'sure')) uncertain = true;
        if ((SIMILES.has(w) ? CLAUSE_SUBJECTS.has(tokens[k + 1]?.raw ?? '') : SIMILE_SECOND.has(w) && k > sentenceStart && tokens[k - 1]!.raw === 'as') && !inPhrase.has(k)) uncertain = true;
        if (NEGATIONS.has(w) && !inPhrase.has(k) && !NEGATION_CANCELLERS.has(tokens[k + 1]?.word ?? '')) {
          negated = true;
          break;
        }
      }
      const present = m.present !== negated;
      const first = tokens[m.at]!;
      const last = tokens[m.at + m.length - 1]!;
      const source = { kind: 'complaint' as const, ref: 'complaint', text: input.complaint.slice(first.start, last.end), start: first.start, end: last.end };
      const dose = present ? assessDose(kb, input.species, weightKg, m.code, tokens, sentenceStart, end) : null;
      if (dose !== null) doses.push(dose);
      found.push({
        code: dose?.belowToxicDose ? BELOW_TOXIC_DOSE : m.code,
        present,
        source,
        ...(duration !== undefined && present ? { durationDays: duration } : {}),
        ...(count !== undefined && present ? { count } : {}),
        ...(uncertain && present ? { uncertain: true } : {}),
        ...(sudden && present ? { onset: 'sudden' as const } : {}),
      });
    }
    sentenceStart = end + 1;
  }
  const complaintFound = found.length;
  if (courseDays !== undefined) for (const f of found) if (f.present && f.durationDays === undefined) f.durationDays = courseDays;
  // A course of 3 weeks or more (the usual cut-off for chronic vomiting, diarrhoea and cough) makes
  // chronic_course present; one of 3 days or less makes it absent. Read from the longest duration
  // given for a duration-sensitive finding.
  let longest: FindingEvidence | undefined;
  for (const f of found) {
    if (f.present && f.durationDays !== undefined && kb.findings.get(f.code)?.durationSensitive === true && (longest === undefined || f.durationDays > longest.durationDays!)) longest = f;
  }
  if (longest !== undefined && (longest.durationDays! >= CHRONIC_DAYS || longest.durationDays! <= ACUTE_DAYS)) {
    found.push({ code: CHRONIC_COURSE, present: longest.durationDays! >= CHRONIC_DAYS, source: longest.source, durationDays: longest.durationDays! });
  }
  for (const s of input.signs) {
    found.push({ code: s.code, present: s.present, source: s.observationId ? { kind: 'observation', ref: s.observationId, value: s.present } : { kind: 'sign', ref: s.code, value: s.present } });
  }
  const panting = found.some((f) => f.code === 'panting_excessive' && f.present);
  found.push(...vitalFindings(kb, input.species, input.vitals, input.vitalSources ?? {}, input.ageYears ?? null, panting));
  // A dose estimated as non-toxic is overruled by the toxin's own signs beyond mild stomach upset
  // (tremors after "two squares" mean more was eaten, or something else): the exposure stands.
  for (const d of doses) {
    if (!d.belowToxicDose) continue;
    const signs = toxinSigns(kb, d.toxin);
    const sign = found.find((f) => f.present && signs.has(f.code));
    if (sign === undefined) continue;
    d.belowToxicDose = false;
    d.basis += `; but ${sign.code} is present, so the ingestion is treated as toxic`;
    const f = found.find((x) => x.code === BELOW_TOXIC_DOSE && x.present);
    if (f !== undefined) f.code = d.exposureFinding;
  }
  const unread = words > 0 && complaintFound === 0;
  return {
    findings: mergeFindings(found),
    ...(doses.length > 0 ? { doses } : {}),
    ...(unread ? { unreadComplaint: true, warning: 'Nothing in the complaint was recognised: the differential rests on the other findings and the priors alone, and triage was not lowered for it; a person should read the complaint' } : {}),
  };
}

function vitalFindings(kb: KnowledgeBase, species: KbSpecies, vitals: CaseInput['vitals'], sources: NonNullable<CaseInput['vitalSources']>, ageYears: number | null, panting: boolean): FindingEvidence[] {
  const out: FindingEvidence[] = [];
  for (const p of kb.vitals.parameters) {
    const value = vitals[p.code];
    if (value === undefined || !referenceRangeApplies(p.code, species, ageYears, panting)) continue;
    const range = p[species];
    const source = sources[p.code] ? { kind: 'observation' as const, ref: sources[p.code]!, value, unit: p.unit } : { kind: 'vital' as const, ref: p.code, value, unit: p.unit };
    if (range.high !== null && value > range.high && p.derivedFindings?.high) out.push({ code: p.derivedFindings.high, present: true, source });
    if (range.low !== null && value < range.low && p.derivedFindings?.low) out.push({ code: p.derivedFindings.low, present: true, source });
  }
  if (vitals.mucousMembranes !== undefined) {
    const mm = kb.vitals.mucousMembranes.find((m) => m.value === vitals.mucousMembranes);
    const source = sources.mucousMembranes ? { kind: 'observation' as const, ref: sources.mucousMembranes, value: vitals.mucousMembranes } : { kind: 'vital' as const, ref: 'mucousMembranes', value: vitals.mucousMembranes };
    for (const code of mm?.findings ?? []) out.push({ code, present: true, source });
  }
  return out;
}

/** One entry per finding: present wins over absent (a sign can be absent yesterday and present today), certain over hedged. */
export function mergeFindings(list: FindingEvidence[]): FindingEvidence[] {
  const byCode = new Map<string, FindingEvidence>();
  for (const f of list) {
    const seen = byCode.get(f.code);
    if (seen === undefined || (!seen.present && f.present) || (seen.present && seen.uncertain === true && f.present && f.uncertain !== true)) byCode.set(f.code, f);
  }
  return [...byCode.values()];
}
