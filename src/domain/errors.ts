/**
 * Tally's error vocabulary. Transports branch on these classes (never on message text) to decide
 * what the client sees: a 400 naming the field, a 404, or a 503 with Retry-After.
 */
export type ErrorCode =
  | 'InvalidInput'
  | 'Forbidden'
  | 'TooManyRequests'
  | 'NotFound'
  | 'TooManyReadings'
  | 'QueueFull'
  | 'StorageUnavailable'
  | 'ShuttingDown';

export abstract class TallyError extends Error {
  abstract readonly code: ErrorCode;
}

/** Input that breaks a rule. `field` is a path into the request, e.g. `readings[3].timestamp`. */
export class ValidationError extends TallyError {
  readonly code = 'InvalidInput' as const;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'ValidationError';
  }
}

/**
 * A reading of a device the request's key does not cover (a device-bound key writing another
 * device's reading): refused like an invalid one, but a 403, not a 400.
 */
export class ForbiddenDeviceError extends TallyError {
  readonly code = 'Forbidden' as const;
  constructor(
    readonly field: string,
    deviceId: string,
    prefix: string,
  ) {
    super(`${field} ${JSON.stringify(deviceId)} is not a device this key may write: its devices' ids start with ${JSON.stringify(prefix)}`);
    this.name = 'ForbiddenDeviceError';
  }
}

/**
 * A reading of a device that is over its rate (TALLY_RATE_DEVICE): refused on its own, a 429, so
 * one chatty device cannot take the commits every other device shares.
 */
export class DeviceRateLimitedError extends TallyError {
  readonly code = 'TooManyRequests' as const;
  constructor(
    readonly field: string,
    deviceId: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`device ${JSON.stringify(deviceId)} is over its rate of readings; retry after ${retryAfterSeconds} s`);
    this.name = 'DeviceRateLimitedError';
  }
}

export class NotFoundError extends TallyError {
  readonly code = 'NotFound' as const;
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** A request carrying more readings than one request may hold (a 413: the request is too large). */
export class TooManyReadingsError extends TallyError {
  readonly code = 'TooManyReadings' as const;
  readonly field: string;
  constructor(field: string, got: number, limit: number) {
    super(`${field} holds ${got} readings; at most ${limit} are allowed in one request`);
    this.name = 'TooManyReadingsError';
    this.field = field;
  }
}

/** Transient: the write queue is full. The client should retry after `retryAfterSeconds`. */
export class QueueFullError extends TallyError {
  readonly code = 'QueueFull' as const;
  readonly retryAfterSeconds = 1;
  constructor(limit: number) {
    super(`the write queue is full (${limit} readings waiting); retry shortly`);
    this.name = 'QueueFullError';
  }
}

/** Transient: the store could not commit. Nothing from the affected requests was acknowledged. */
export class StorageUnavailableError extends TallyError {
  readonly code = 'StorageUnavailable' as const;
  readonly retryAfterSeconds = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

export class ShuttingDownError extends TallyError {
  readonly code = 'ShuttingDown' as const;
  readonly retryAfterSeconds = 1;
  constructor() {
    super('the service is shutting down; retry on another node or shortly');
    this.name = 'ShuttingDownError';
  }
}

/** A setting that cannot be used; the message names the variable or flag. Stops the start. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A page cursor the store did not issue, or issued for another listing. A 400 at the boundary. */
export class InvalidCursorError extends TallyError {
  readonly code = 'InvalidInput' as const;
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCursorError';
  }
}
