// Units of daemon/src/batch/outage.ts: which errors mean "AWS unreachable", the poll back-off (with an
// injected random source, so every wait is known), and the job message, which must carry no secret.
// The behaviour through the HTTP fakes is in test/reliability-aws-faults.test.ts.
import t from 'tap';
import {
  Backoff,
  formatSpan,
  isOutageMessage,
  isThrottling,
  isUnreachable,
  outageMessage,
  redact,
  shortError,
} from '../daemon/src/batch/outage.js';
import { SkyfarmError } from '../daemon/src/errors.js';

const awsError = (name: string, status: number, message = 'x') =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
const netError = (code: string, message: string) => Object.assign(new Error(message), { code });

t.test('throttling and outages are told apart from errors that will not pass', async (t) => {
  for (const name of ['ThrottlingException', 'TooManyRequestsException', 'SlowDown', 'RequestLimitExceeded'])
    t.ok(isThrottling(awsError(name, 400)), `${name} is throttling`);
  t.ok(isThrottling(awsError('Unknown', 429)), 'HTTP 429 is throttling');
  t.ok(isThrottling(awsError('ServiceUnavailable', 503)), 'HTTP 503 is throttling');
  t.notOk(isThrottling(awsError('AccessDeniedException', 403)), 'access denied is not');

  t.ok(isUnreachable(awsError('TooManyRequestsException', 429)), 'throttling: unreachable');
  t.ok(isUnreachable(awsError('ServerException', 500)), '5xx: unreachable');
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH'])
    t.ok(isUnreachable(netError(code, `connect ${code}`)), `${code}: unreachable`);
  t.ok(
    isUnreachable(new Error('wrapped', { cause: netError('ECONNRESET', 'socket hang up') })),
    'a network error as the cause',
  );
  t.notOk(isUnreachable(awsError('AccessDeniedException', 403)), 'access denied: not an outage');
  t.notOk(isUnreachable(awsError('ExpiredTokenException', 400)), 'expired credentials: not an outage');
  t.notOk(
    isUnreachable(new SkyfarmError('BAD_ARGUMENT', 'no', { cause: netError('ECONNRESET', 'x') })),
    'an error raised on purpose is never retried as an outage',
  );
});

t.test(
  'back-off: exponential, capped, jittered between half and all of the step, reset by a success',
  async (t) => {
    const low = new Backoff({ baseMs: 250, maxMs: 7500, random: () => 0 });
    const high = new Backoff({ baseMs: 250, maxMs: 7500, random: () => 0.999999 });
    const lows = Array.from({ length: 8 }, () => low.fail());
    const highs = Array.from({ length: 8 }, () => high.fail());
    t.same(lows, [125, 250, 500, 1000, 2000, 3750, 3750, 3750], 'the fixed half of each step');
    t.same(highs, [250, 500, 1000, 2000, 4000, 7500, 7500, 7500], 'the whole step, at most the cap');
    t.equal(low.failures, 8);
    low.reset();
    t.equal(low.failures, 0, 'reset');
    t.equal(low.fail(), 125, 'after a success it starts again from the first step');

    // Seeded: waits stay within [step/2, step] and the total over 8 s of throttling stays small.
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const backoff = new Backoff({ baseMs: 250, maxMs: 7500, random });
    let elapsed = 0;
    let tries = 0;
    while (elapsed < 8000) {
      const step = Math.min(7500, 250 * 2 ** backoff.failures);
      const wait = backoff.fail();
      t.ok(wait >= step / 2 && wait <= step, `wait ${wait} ms within [${step / 2}, ${step}]`);
      elapsed += wait;
      tries++;
    }
    t.ok(tries <= 7, `${tries} tries in 8 s instead of 32 at a fixed 250 ms`);
  },
);

t.test('the outage message: since when, for how long, a short error, no secret', async (t) => {
  const since = new Date(2026, 10, 27, 12, 3, 10).getTime();
  const error = netError('ECONNRESET', 'socket hang up');
  t.equal(
    outageMessage(since, since + 3 * 60_000 + 20_000, error),
    'AWS unreachable since 12:03 (3 min): ECONNRESET: socket hang up; retrying',
  );
  t.equal(
    outageMessage(since, since + 42_000, awsError('TooManyRequestsException', 429, 'Rate exceeded')),
    'AWS unreachable since 12:03 (42 s): TooManyRequestsException: Rate exceeded; retrying',
  );
  t.match(
    outageMessage(since, since + 5000, awsError('ExpiredTokenException', 400, 'The security token expired')),
    /^AWS requests failing since 12:03 \(5 s\): ExpiredTokenException: The security token expired; retrying$/,
    'an error that is not an outage says so differently',
  );
  t.ok(isOutageMessage(outageMessage(since, since, error)));
  t.ok(isOutageMessage(outageMessage(since, since, awsError('AccessDenied', 403))));
  t.notOk(isOutageMessage('chunks: 1 running, 2 queued, 0 done · frames 0/3'));
  t.equal(formatSpan(59_400), '59 s');
  t.equal(formatSpan(125 * 60_000), '2 h 05 min');
  t.equal(
    shortError(netError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9')),
    'connect ECONNREFUSED 127.0.0.1:9',
  );
  t.equal(shortError(awsError('ServerException', 503, '')), 'ServerException');
  t.ok(shortError(new Error('x'.repeat(500))).length <= 160, 'long messages are cut');

  const signature = 'a'.repeat(64);
  const leaky = new Error(
    `GET https://b.s3.amazonaws.com/jobs/f.png?X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F20261127&X-Amz-Signature=${signature} ` +
      `failed; key AKIAABCDEFGHIJKLMNOP, Authorization: Bearer tok3nv4lue, token=s3cr3t\nsecond line`,
  );
  const short = shortError(leaky);
  for (const secret of [signature, 'AKIAABCDEFGHIJKLMNOP', 'tok3nv4lue', 's3cr3t', 'second line'])
    t.notOk(short.includes(secret), `no "${secret.slice(0, 12)}" in: ${short}`);
  t.match(short, /^GET https:\/\/b\.s3\.amazonaws\.com\/jobs\/f\.png\?…/, 'the useful part stays');
  t.equal(redact('X-Amz-Security-Token=abc&b=1'), 'X-Amz-Security-Token=…&b=1');
});
