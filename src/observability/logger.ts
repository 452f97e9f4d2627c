import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config.js';

/**
 * JSON logs. Request lines carry ids, route, status and latency only; these paths are redacted
 * as a second line of defence should a body or header ever be logged.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'key',
  '*.key',
  'body',
  '*.body',
  '*.email',
  '*.phone',
  '*.address',
  '*.reason',
  '*.complaint',
  '*.notes',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'agenticpet', pid: process.pid } }, destination);
}
