// The few Jest 29 matchers the framework's locking specs use, so their
// assertions can be transcribed unchanged (the framework's repository pins
// jest ^29.7.0 in its package.json). Semantics follow Jest 29:
// - toBe: Object.is;
// - toEqual: recursive equality where two Errors are equal when their
//   messages are (@jest/expect-utils, jasmineUtils `eq`);
// - toThrow(string) / toThrowError(string): the error's message contains it;
// - rejects / resolves: the promise must reject / resolve, then the matcher
//   applies to the reason / value;
// - jest.fn(impl): a function that counts its calls, for
//   toHaveBeenCalledTimes / toBeCalledTimes.

import { AssertionError } from 'node:assert';

function fail(message) {
  throw new AssertionError({ message });
}

function equals(a, b) {
  if (a instanceof Error && b instanceof Error) return a.message === b.message;
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equals(a[k], b[k]));
}

const show = (v) => (v instanceof Error ? `${v.name}(${JSON.stringify(v.message)})` : JSON.stringify(v, (_, x) => (x instanceof Error ? `${x.name}(${x.message})` : x)));

function matchers(actual) {
  const m = {
    toBe(expected) {
      if (!Object.is(actual, expected)) fail(`expected ${show(actual)} to be ${show(expected)}`);
    },
    toEqual(expected) {
      if (!equals(actual, expected)) fail(`expected ${show(actual)} to equal ${show(expected)}`);
    },
    toBeUndefined() {
      if (actual !== undefined) fail(`expected ${show(actual)} to be undefined`);
    },
    toThrow(expected) {
      const message = actual instanceof Error ? actual.message : String(actual);
      if (expected !== undefined && !message.includes(expected)) fail(`expected an error containing ${show(expected)}, got ${show(actual)}`);
    },
    toHaveBeenCalledTimes(n) {
      if (typeof actual?.calls !== 'number') fail('not a jest.fn()');
      if (actual.calls !== n) fail(`expected ${n} calls, got ${actual.calls}`);
    },
  };
  m.toThrowError = m.toThrow;
  m.toBeCalledTimes = m.toHaveBeenCalledTimes;
  return m;
}

export function expect(actual) {
  const m = matchers(actual);
  const settle = (rejectWanted) => new Proxy({}, {
    get: (_, name) => async (...args) => {
      let value, rejected = false;
      try {
        value = await actual;
      } catch (e) {
        value = e;
        rejected = true;
      }
      if (rejected !== rejectWanted) fail(`expected the promise to ${rejectWanted ? 'reject' : 'resolve'}, it ${rejected ? 'rejected with' : 'resolved to'} ${show(value)}`);
      return matchers(value)[name](...args);
    },
  });
  m.rejects = settle(true);
  m.resolves = settle(false);
  return m;
}

export const jest = {
  fn(impl = () => undefined) {
    const f = (...args) => {
      f.calls++;
      return impl(...args);
    };
    f.calls = 0;
    return f;
  },
};
