/** The typed case the agents work on, and the evidence they pass between them. */
import type { KbSpecies, Urgency } from '../knowledge/model.js';

/** Where a piece of evidence came from, so every conclusion can be traced back to it. */
export interface EvidenceRef {
  kind: 'complaint' | 'sign' | 'vital' | 'lab' | 'observation' | 'media' | 'signalment';
  /** Observation or media id, lab analyte, vital name, sign code or "complaint". */
  ref: string;
  /** The complaint phrase as written, or a rendering of the value. */
  text?: string;
  start?: number;
  end?: number;
  value?: number | string | boolean;
  unit?: string;
  /** The model version that read the image, on a finding derived from one (kind media). */
  model?: { name: string; version: string; sha256: string };
}

export interface FindingEvidence {
  code: string;
  present: boolean;
  source: EvidenceRef;
  durationDays?: number;
  /** The owner hedged ("maybe limping", "I think she was sick"): weighed as half the evidence. */
  uncertain?: boolean;
  /** How many times, when the sentence says so ("twice", "6 times"). */
  count?: number;
  /** "suddenly", "out of nowhere" in the same sentence. */
  onset?: 'sudden';
  /**
   * How much of the evidence counts (0..1), on findings a model read off an image: the
   * differential multiplies the finding's log likelihood by it. Absent: all of it (half when uncertain).
   */
  weight?: number;
}

/** A reported ingestion of a known toxin whose dose could be estimated from the complaint and the weight. */
export interface DoseAssessment {
  toxin: string;
  exposureFinding: string;
  /** Estimated dose of the toxic agent, per kg of body weight. */
  dose: number;
  unit: string;
  /** The lowest toxic dose for the species in toxins.json, same unit. */
  lowestToxicDose: number;
  belowToxicDose: boolean;
  /** How the amount was read and converted (grams, agent content, weight). */
  basis: string;
}

export interface CaseVitals {
  temperatureC?: number;
  heartRate?: number;
  respiratoryRate?: number;
  mucousMembranes?: 'pink' | 'pale' | 'white' | 'injected' | 'cyanotic' | 'icteric' | 'brick-red';
  crtSeconds?: number;
  weightKg?: number;
}

export interface CaseLab {
  analyte: string;
  value: number | string;
  /** Absent (or empty) for unitless results (usg) and dipstick grades. */
  unit?: string;
  /** Observation id when the value came from a stored observation. */
  observationId?: string;
}

export interface CaseInput {
  species: KbSpecies;
  breed: string | null;
  ageYears: number | null;
  sex: 'male' | 'female' | 'unknown';
  neutered: boolean | null;
  weightKg: number | null;
  complaint: string;
  /** Structured findings: codes the clinician ticked (present) or ruled out. */
  signs: Array<{ code: string; present: boolean; observationId?: string }>;
  vitals: CaseVitals;
  /** Observation ids the vitals came from, by vital name. */
  vitalSources?: Partial<Record<keyof CaseVitals, string>>;
  labs: CaseLab[];
  mediaIds: string[];
  /** Findings the imaging agent read off the case's images (absent without images or models). */
  imageFindings?: FindingEvidence[];
  /** The media a model read (the others are stored and linked, not interpreted). */
  imagesRead?: string[];
  /** Drug codes the clinician is considering; the plan checks them for safety. */
  treatments: string[];
}

export interface IntakeOutput {
  findings: FindingEvidence[];
  /** Doses estimated for reported toxin ingestions (absent when none could be estimated). */
  doses?: DoseAssessment[];
  /** The complaint has words but no phrase of it was recognised. */
  unreadComplaint?: boolean;
}

export interface LabResult {
  analyte: string;
  name: string;
  value: number | string;
  unit: string;
  /** The analyte as the request named it, when that was an alias or a LOINC code rather than the key. */
  sentAs?: string;
  /** The LOINC code the result was sent under. */
  loinc?: string;
  /** The value in the knowledge base's US unit (ordinal grade for dipstick results). */
  valueUS: number;
  flag: 'low' | 'normal' | 'high';
  interval: { low: number | null; high: number | null; unit: string; source: string };
  observationId?: string;
}

export interface LabsOutput {
  results: LabResult[];
  findings: FindingEvidence[];
  notInterpreted: Array<{ analyte: string; reason: string }>;
}

export interface EvidenceWeight {
  finding: string;
  present: boolean;
  /**
   * Only on signalment items (breed, age, sex), which are not findings. A finding's source is
   * its entry in the findings the differential was given (the report's `findings`), under the
   * same code: repeating it in every differential's evidence was most of a report's bytes.
   */
  source?: EvidenceRef;
  /** Natural log of the likelihood ratio this item contributed: > 0 supports, < 0 argues against. */
  weight: number;
}

export interface Differential {
  code: string;
  name: string;
  urgency: Urgency;
  probability: number;
  evidence: EvidenceWeight[];
}

export interface DifferentialOutput {
  differentials: Differential[];
  /** How many conditions of the species were scored. */
  considered: number;
}

export type TriageLevel = 'emergency' | 'urgent' | 'routine' | 'self-care';

export interface TriageReason {
  level: TriageLevel;
  reason: string;
  source?: EvidenceRef;
  /** A knowledge-base source id or basis for the rule. */
  basis?: string;
}

export interface TriageOutput {
  level: TriageLevel;
  reasons: TriageReason[];
}

export interface DoseSuggestion {
  route: string;
  frequency: string;
  indication: string;
  perKg: { min: number; max: number; unit: string } | null;
  /** For this patient's weight, when known. */
  total: { min: number; max: number; unit: string } | null;
  source: string;
}

export interface TreatmentOption {
  drug: string;
  name: string;
  role: string;
  forCondition: string | null;
  doses: DoseSuggestion[];
  cautions: string[];
}

export interface BlockedOption {
  drug: string;
  name: string;
  reason: string;
  because: string;
  source: string;
}

export interface ToxinNote {
  toxin: string;
  name: string;
  /** Published toxic doses for this species (null value: compound-specific, see description). */
  doses: Array<{ value: number | null; unit: string; description: string; source: string }>;
  /** The patient's weight times the lowest threshold, when both are known: the smallest amount of concern. */
  lowestAmountOfConcern: { value: number; unit: string } | null;
}

export interface PlanOutput {
  tests: Array<{ test: string; forConditions: string[] }>;
  toxins: ToxinNote[];
  treatments: TreatmentOption[];
  blocked: BlockedOption[];
  nonDrug: string[];
}

export interface NarrativeOutput {
  text: string;
  generator: 'template' | 'llm';
}

/** One step of the reasoning chain: which agent ran, on what (digest), and what it produced. */
export interface ChainStep {
  seq: number;
  agent: string;
  agentVersion: string;
  /**
   * sha256 over the JSON of the case fields the agent reads and the output digests of the agents
   * whose outputs it reads (a Merkle chain: each output is serialised and hashed once).
   */
  inputDigest: string;
  status: 'ok' | 'failed' | 'timeout' | 'skipped';
  durationMs: number;
  at: string;
  output: unknown;
}

/** A message one agent addressed to another (or to the orchestrator). */
export interface AgentMessage {
  from: string;
  to: string;
  kind: string;
  at: string;
  body: unknown;
}
