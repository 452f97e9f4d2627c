/**
 * What the diagnoses service reports about its work, as a port: clinical/ stays free of the
 * metrics library; observability/ implements it and app.ts wires it in.
 */
import type { ChainStep } from './sessions.js';

export interface DiagnosisMetrics {
  /** The agents ran: one call per diagnosis with every step (agent, status, duration). */
  agentSteps(steps: readonly ChainStep[]): void;
  /** A diagnosis was committed (not an idempotent replay) with this triage level. */
  diagnosisRecorded(triageLevel: string): void;
}

/** Reports nothing; for services built without metrics (tools, some tests). */
export const NO_DIAGNOSIS_METRICS: DiagnosisMetrics = {
  agentSteps: () => undefined,
  diagnosisRecorded: () => undefined,
};
