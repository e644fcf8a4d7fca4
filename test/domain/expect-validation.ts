import { expect } from 'vitest';
import { ValidationError } from '../../src/domain/errors.js';

/** Runs `fn`, expects a ValidationError naming `field` (in `.field` and in the message), and returns it. */
export function validationError(fn: () => unknown, field: string): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  const error = caught as ValidationError;
  expect(error.field).toBe(field);
  expect(error.code).toBe('InvalidInput');
  expect(error.message).toContain(field);
  return error;
}
