/**
 * The ephemeral tier's port: consultation sessions holding the agents' working state. Losing a
 * session never loses a clinical record; everything a diagnosis concludes is persisted in the
 * clinical store. Adapters: Redis (shared across instances) and in-process (embedded default).
 */

/** One step of the reasoning chain: which agent ran, on what (digest), and what it produced. */
export interface ChainStep {
  seq: number;
  agent: string;
  agentVersion: string;
  /**
   * sha256 of the canonical JSON of the agent's input, where an upstream agent's output is
   * written as its own digest (a Merkle chain: each output is hashed once).
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
