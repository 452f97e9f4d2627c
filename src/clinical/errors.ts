/**
 * Domain errors. Each carries the HTTP status and a stable problem type so the HTTP layer can
 * render RFC 9457 problem+json without knowing the domain; the domain never imports http/.
 */
export class DomainError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly title: string,
    detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(entity: string, id: string) {
    super(404, 'not-found', 'Not Found', `${entity} ${id} was not found`);
  }
}

export class ValidationError extends DomainError {
  constructor(detail: string, extra: Record<string, unknown> = {}) {
    super(400, 'validation', 'Invalid request', detail, extra);
  }
}

export class UnprocessableError extends DomainError {
  constructor(type: string, detail: string, extra: Record<string, unknown> = {}) {
    super(422, type, 'Unprocessable request', detail, extra);
  }
}

export class PreconditionRequiredError extends DomainError {
  constructor() {
    super(428, 'precondition-required', 'Precondition Required', 'This request must carry an If-Match header with the ETag of the version it modifies');
  }
}

export class PreconditionFailedError extends DomainError {
  constructor(expected: string, current: number) {
    super(412, 'precondition-failed', 'Precondition Failed', `If-Match ${expected} does not match the current version "${current}"`, {
      currentVersion: current,
    });
  }
}

export class ForbiddenError extends DomainError {
  constructor(detail: string) {
    super(403, 'forbidden', 'Forbidden', detail);
  }
}

export class UnauthorizedError extends DomainError {
  constructor(detail: string) {
    super(401, 'unauthorized', 'Unauthorized', detail);
  }
}

export class ConflictError extends DomainError {
  constructor(type: string, detail: string) {
    super(409, type, 'Conflict', detail);
  }
}

/**
 * A service the request depends on, other than storage, could not answer (the identity
 * provider's key set, for one): nothing was done, and the client may retry.
 */
export class DependencyUnavailableError extends DomainError {
  constructor(detail: string) {
    super(503, 'dependency-unavailable', 'Service Unavailable', detail);
  }
}

/** A dependency (database, blob store) could not be reached; nothing was written. */
export class StorageUnavailableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
    /** Sent as Retry-After: shorter while a database failover is known to be under way. */
    readonly retryAfterSeconds = 5,
  ) {
    super(message);
    this.name = 'StorageUnavailableError';
  }
}

/**
 * The service is saturated (event loop lagging, or too much work queued for the database):
 * the request was refused before doing anything, and may be retried after retryAfterSeconds.
 */
export class OverloadedError extends Error {
  constructor(
    message: string,
    /** What was saturated (a metric label): event_loop_delay, db_queue. */
    readonly reason: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
    this.name = 'OverloadedError';
  }
}

/** The embedded store is held by another process (typically the running server). */
export class StoreLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreLockedError';
  }
}

/**
 * Another request stored its response under the same Idempotency-Key first (they raced): the
 * operation is run again and replays that response. Not a refusal, so not a DomainError.
 */
export class IdempotencyKeyTakenError extends Error {
  constructor() {
    super('A concurrent request stored a response under this Idempotency-Key first');
    this.name = 'IdempotencyKeyTakenError';
  }
}

/**
 * A model could not be run: unknown to the runtime, its artefact failing its SHA-256, too slow,
 * the model server unreachable or answering an error, or inputs that do not fit the model. The
 * ModelRuntime port's adapters throw only this, so the caller (the imaging agent) degrades the
 * answer with a warning on one type. `reason` is stable; the message is for logs.
 */
export class ModelRuntimeError extends Error {
  constructor(
    readonly reason: 'unknown-model' | 'integrity' | 'timeout' | 'unavailable' | 'bad-input' | 'failed',
    /** `name@version` of the model, when known. */
    readonly model: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'ModelRuntimeError';
  }
}
