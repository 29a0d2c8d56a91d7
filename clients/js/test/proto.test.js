// The hand-written protobuf encoding of Acquire, Release and Refresh
// (src/proto.js) against bytes from Go's google.golang.org/protobuf
// (proto.MarshalOptions{Deterministic: true}.Marshal of the generated types
// in api/gen/raftlock/v1, raftlock at commit 2f6c148): requests must encode
// to exactly those bytes, answers must decode from them to what Connect
// JSON would say. Every call the other test files make goes through it
// against real nodes too.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { CODECS, parseDuration } = require('../src/proto.js');

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (h) => Buffer.from(h, 'hex');

describe('proto', () => {
  it('encodes requests as Go does', () => {
    assert.equal(hex(CODECS.Acquire.encode({ keys: ['a', 'ключ/é'], ownerId: 'o-1', expire: '60s', waitTimeout: '1.5s', requestId: 'r-1' })),
      '0a01610a0bd0bad0bbd18ed1872fc3a912036f2d311a02083c220808011080cab5ee012a03722d31');
    // Empty owner and request id are left out, an empty key is not.
    assert.equal(hex(CODECS.Acquire.encode({ keys: ['k'], ownerId: '', waitTimeout: '0.001s', requestId: '' })), '0a016b220410c0843d');
    assert.equal(hex(CODECS.Acquire.encode({ keys: [''], requestId: 'r' })), '0a002a0172');
    // fencing_token is optional (explicit presence): 0 is sent, absent is not.
    assert.equal(hex(CODECS.Release.encode({ keys: ['a'], ownerId: 'o', requestId: 'r', fencingToken: '9223372036854775813' })),
      '0a016112016f1a01722085808080808080808001');
    assert.equal(hex(CODECS.Release.encode({ keys: ['a'], ownerId: '', requestId: 'r', fencingToken: '0' })), '0a01611a01722000');
    assert.equal(hex(CODECS.Release.encode({ keys: ['a', 'b'], ownerId: 'o', requestId: 'r' })), '0a01610a016212016f1a0172');
    assert.equal(hex(CODECS.Refresh.encode({ keys: ['a'], ownerId: 'o', expire: '0.123456789s', requestId: 'r' })), '0a016112016f1a0510959aef3a220172');
  });

  it('decodes answers as Connect JSON would give them', () => {
    const big = '9223372036854775813';
    assert.deepEqual(CODECS.Acquire.decode(bytes('0885808080808080808001121c0a016112016f18858080808080808080012207083b1080e59a77280312270a08d0bad0bbd18ed18712016f1807221608ffffffffffffffffff011080b6ca91feffffffff0112060a017a18ac021a03722d39')), {
      fencingToken: big,
      locks: [
        { key: 'a', ownerId: 'o', fencingToken: big, expiresIn: '59.25s', waiters: 3 },
        { key: 'ключ', ownerId: 'o', fencingToken: '7', expiresIn: '-1.5s' },
        { key: 'z', fencingToken: '300' },
      ],
      requestId: 'r-9',
    });
    assert.deepEqual(CODECS.Release.decode(bytes('0801')), { released: true });
    assert.deepEqual(CODECS.Release.decode(bytes('')), {});
    assert.deepEqual(CODECS.Refresh.decode(bytes('0a0a0a016112016f18012200')), { locks: [{ key: 'a', ownerId: 'o', fencingToken: '1', expiresIn: '0s' }] });
  });

  it('skips fields it does not know, and refuses truncated or malformed input', () => {
    // ReleaseResponse with unknown fields of every wire type around released.
    const unknown = '10ff01' + '190102030405060708' + '0801' + '2203616263' + '2d01020304';
    assert.deepEqual(CODECS.Release.decode(bytes(unknown)), { released: true });
    assert.throws(() => CODECS.Acquire.decode(bytes('1a05616263')), /truncated/);
    assert.throws(() => CODECS.Acquire.decode(bytes('08ffffffffffffffffffff01')), /too long/);
    assert.throws(() => CODECS.Acquire.decode(bytes('0b')), /wire type 3/);
  });

  it('leaves strings without a UTF-8 form to JSON', () => {
    assert.equal(CODECS.Acquire.encode({ keys: ['a\ud800'], ownerId: 'o', requestId: 'r' }), null);
    assert.equal(CODECS.Release.encode({ keys: ['a'], ownerId: '\udc00', requestId: 'r' }), null);
    assert.equal(CODECS.Refresh.encode({ keys: ['a'], ownerId: 'o', requestId: 'r\ud800' }), null);
  });

  it('reads durations exactly', () => {
    assert.deepEqual(parseDuration('60s'), [60, 0]);
    assert.deepEqual(parseDuration('0.1s'), [0, 100000000]);
    assert.deepEqual(parseDuration('3600.000000001s'), [3600, 1]);
    assert.throws(() => parseDuration('1e3s'), /not a duration/);
  });
});
