// Assertion helpers: whole-body comparison with placeholders for server-generated values, and
// the exact `InstantAPIError {status, body}` an SDK call must reject with.

import assert from 'node:assert/strict';
import { InstantAPIError } from '@instantdb/admin';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value) {
  return typeof value === 'string' && uuidPattern.test(value);
}

/** Placeholder for a value the server generates: any lowercase canonical UUID string. */
export const ANY_UUID = Object.freeze({ placeholder: 'any lowercase UUID string' });
/** Placeholder for any integer. */
export const ANY_INT = Object.freeze({ placeholder: 'any integer' });

/** What the engine writes where the server would echo a secret back. */
export const REDACTED = '<redacted>';

const echoedSecrets = new WeakSet();

/**
 * Placeholder for a place where the InstantDB server echoes a credential the client sent (the
 * admin token in `hint.args`, the raw `authorization` header in `original-input`). The engine
 * deliberately never sends a token back out (DESIGN §3: secrets never reach an artifact or a
 * log line, and error envelopes end up in both), so it writes `<redacted>` there instead. The
 * placeholder accepts exactly those two values; this is the suite's only allowance.
 */
export function echoedSecret(value) {
  const placeholder = Object.freeze({ placeholder: 'echoed secret', value });
  echoedSecrets.add(placeholder);
  return placeholder;
}

// Replaces each placeholder in `expected` by the actual value when that value fits it, so the
// final deepStrictEqual compares the whole body and its diff shows every real difference.
function fill(expected, actual) {
  if (expected === ANY_UUID) {
    return isUuid(actual) ? actual : expected;
  }
  if (expected === ANY_INT) {
    return Number.isInteger(actual) ? actual : expected;
  }
  if (echoedSecrets.has(expected)) {
    return actual === REDACTED ? REDACTED : expected.value;
  }
  if (Array.isArray(expected)) {
    return expected.map((item, idx) => fill(item, Array.isArray(actual) ? actual[idx] : undefined));
  }
  if (expected !== null && typeof expected === 'object') {
    const out = {};
    for (const [key, value] of Object.entries(expected)) {
      out[key] = fill(value, actual !== null && typeof actual === 'object' ? actual[key] : undefined);
    }
    return out;
  }
  return expected;
}

export function assertShape(actual, expected, message) {
  assert.deepStrictEqual(actual, fill(expected, actual), message);
}

/**
 * Awaits `promise`, which must reject with `InstantAPIError` carrying exactly `status` and
 * `body` (placeholders allowed in `body`).
 */
export async function assertApiError(promise, status, body) {
  let error;
  try {
    const value = await promise;
    assert.fail(`expected InstantAPIError ${status}, got a success: ${JSON.stringify(value)}`);
  } catch (err) {
    error = err;
  }
  if (!(error instanceof InstantAPIError)) {
    throw error;
  }
  assertShape({ status: error.status, body: error.body }, { status, body });
}

/** Postgres orders uuids bytewise, which is the order of their lowercase canonical strings. */
export function pgCompareUuid(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Entities created in one transaction share serverCreatedAt, so they come back by id. */
export function byId(entities) {
  return [...entities].sort((a, b) => pgCompareUuid(a.id, b.id));
}
