/**
 * The ephemeral tier's port: consultation sessions holding the agents' working state. Losing a
 * session never loses a clinical record; everything a diagnosis concludes is persisted in the
 * clinical store. Adapters: Redis (shared across instances) and in-process (embedded default).
 */

import type { AgentMessage, ChainStep } from '../agents/types.js';

export type { AgentMessage, ChainStep };

export interface SessionMeta {
  id: string;
  clinicId: string;
  patientId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface SessionState {
  meta: SessionMeta;
  /** Inputs added so far (complaint, signs, vitals, labs, media), in the order they came. */
  inputs: unknown[];
  chain: ChainStep[];
  /**
   * Latest output per agent name: the output of the last step of each agent that produced one.
   * Read from the chain, so each output is stored once.
   */
  results: Record<string, unknown>;
  messages: AgentMessage[];
}

export interface SessionWrite {
  steps?: ChainStep[];
  /**
   * The same steps as the orchestrator already encoded them (stepJson), stored as given instead
   * of being serialised again; when present it stands for `steps`.
   */
  encodedSteps?: string[];
  messages?: AgentMessage[];
  inputs?: unknown[];
}

export interface SessionStore {
  readonly kind: 'redis' | 'memory';
  /** Creates a session, with a first batch if given, in one operation (one round trip on Redis); its TTL starts now. */
  create(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite): Promise<void>;
  /** The whole session, or null when absent, expired or of another clinic. Slides the TTL. */
  get(clinicId: string, sessionId: string, ttlSeconds: number): Promise<SessionState | null>;
  /** Only the session's metadata (one small read), or null as for get. Does not slide the TTL. */
  meta(clinicId: string, sessionId: string): Promise<SessionMeta | null>;
  /** Appends in one batch (one round trip on Redis); false when the session is gone. Slides the TTL. */
  write(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number): Promise<boolean>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The session port for one request, telling whether its operations fell back to in-process state. */
export interface TrackedSessions extends SessionStore {
  readonly degraded: boolean;
}
