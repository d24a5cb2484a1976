// Optimistic locking with an event-sourced bank account, against jobstate's
// EventoDB gateway: the flows of EventoDB's "Optimistic Locking" guide, in
// plain Node.js (20 or later: global fetch, no dependencies).
//
//   1. A bank account: open it with 100, deposit 50, withdraw 30; each
//      write expects the version its aggregate was loaded at. Balance 120.
//   2. Two concurrent deposits on one account, both loaded at the same
//      version: exactly one is stored, the other gets
//      STREAM_VERSION_CONFLICT. Final balance 100.
//   3. writeWithRetry: three writers at once, each re-reading the version
//      and backing off (10 ms, 20 ms, 40 ms ...) on a conflict, until all
//      are stored.
//
// Environment:
//   URL     the gateway (default http://127.0.0.1:8080)
//   TOKEN   a bearer token allowed to write in the namespace (required)
//   RUN_ID  names this run's streams: account-<RUN_ID>,
//           account-concurrent-test-<RUN_ID>, account-retry-<RUN_ID>
//           (default: random, so every run starts from new streams)
//   NAMESPACE  sent as X-Jobstate-Namespace, for a token that does not name
//           its namespace (a Kubernetes token); a namespace token needs none
//
// Every result is checked; it exits 1 if any check fails, so it doubles as a
// test (test/e2e runs it).

const url = process.env.URL || 'http://127.0.0.1:8080';
const token = process.env.TOKEN;
const namespace = process.env.NAMESPACE;
const runId = process.env.RUN_ID || Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

if (!token) {
  console.error('bank-account.mjs: set TOKEN to a token of the namespace (see examples/eventodb/README.md)');
  process.exit(2);
}

// EventoDBClient is the guide's client, reduced to the three calls it uses.
// A failed call throws an Error whose message is EventoDB's error code
// (STREAM_VERSION_CONFLICT, AUTH_REQUIRED, ...), with the server's message,
// details and HTTP status alongside.
class EventoDBClient {
  constructor(baseURL, { token, namespace } = {}) {
    this.baseURL = baseURL.replace(/\/+$/, '');
    this.token = token;
    this.namespace = namespace;
  }

  async rpc(method, ...args) {
    const res = await fetch(`${this.baseURL}/rpc`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        ...(this.namespace ? { 'X-Jobstate-Namespace': this.namespace } : {}),
      },
      body: JSON.stringify([method, ...args]),
    });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      throw Object.assign(new Error('INVALID_RESPONSE'), { status: res.status, description: text });
    }
    if (!res.ok || (body && body.error)) {
      const e = (body && body.error) || {};
      throw Object.assign(new Error(e.code || `HTTP_${res.status}`), {
        status: res.status,
        description: e.message,
        details: e.details,
      });
    }
    return body;
  }

  // writeMessage stores message {type, data, metadata?}; options
  // {expectedVersion?, id?}. It answers {position, globalPosition}.
  writeMessage(streamName, message, options) {
    return options === undefined
      ? this.rpc('stream.write', streamName, message)
      : this.rpc('stream.write', streamName, message, options);
  }

  // getStream answers rows [id, type, position, globalPosition, data,
  // metadata, time].
  getStream(streamName, options = {}) {
    return this.rpc('stream.get', streamName, options);
  }

  // getStreamVersion answers the position of the last message, or null.
  getStreamVersion(streamName) {
    return this.rpc('stream.version', streamName);
  }
}

// Checks: every result is compared with what the guide says it is.
let failures = 0;
function check(ok, what, got) {
  if (ok) {
    console.log(`  ok: ${what}`);
  } else {
    failures++;
    console.log(`  FAIL: ${what}; got ${JSON.stringify(got)}`);
  }
}

// The account aggregate, as in the guide.

async function loadAccount(client, accountId) {
  const streamName = `account-${accountId}`;
  const messages = await client.getStream(streamName);

  const state = { accountId, balance: 0, version: -1 };
  for (const msg of messages) {
    const [, type, position, , data] = msg;
    state.version = position;
    switch (type) {
      case 'AccountOpened':
        state.balance = data.initialBalance || 0;
        break;
      case 'Deposited':
        state.balance += data.amount;
        break;
      case 'Withdrawn':
        state.balance -= data.amount;
        break;
    }
  }
  return state;
}

// deposit and withdraw load the account and write with the version it was
// loaded at. loaded, if given, is awaited between the two: the concurrent
// flow uses it to hold both deposits until both have loaded, which makes
// the race the guide describes certain instead of likely.
async function deposit(client, accountId, amount, loaded) {
  const streamName = `account-${accountId}`;
  const account = await loadAccount(client, accountId);
  if (loaded) await loaded(account);
  if (amount <= 0) {
    throw new Error('Deposit amount must be positive');
  }
  return client.writeMessage(streamName, { type: 'Deposited', data: { amount } }, { expectedVersion: account.version });
}

async function withdraw(client, accountId, amount) {
  const streamName = `account-${accountId}`;
  const account = await loadAccount(client, accountId);
  if (amount <= 0) {
    throw new Error('Withdrawal amount must be positive');
  }
  if (account.balance < amount) {
    throw new Error('Insufficient funds');
  }
  return client.writeMessage(streamName, { type: 'Withdrawn', data: { amount } }, { expectedVersion: account.version });
}

// writeWithRetry is the guide's: read the version, write expecting it, and
// on a conflict back off 10 ms, 20 ms, 40 ms, ... up to maxRetries attempts.
// onConflict counts the retries.
async function writeWithRetry(client, streamName, message, maxRetries = 3, onConflict = () => {}) {
  for (let attempt = 0; attempt < maxRetries; attempt++) {
    try {
      const version = (await client.getStreamVersion(streamName)) ?? -1;
      return await client.writeMessage(streamName, message, { expectedVersion: version });
    } catch (error) {
      if (error.message !== 'STREAM_VERSION_CONFLICT') {
        throw error;
      }
      if (attempt === maxRetries - 1) {
        throw new Error(`Failed after ${maxRetries} retries: ${error.message}`);
      }
      const delay = Math.pow(2, attempt) * 10;
      onConflict(delay);
      console.log(`Conflict detected, retrying in ${delay}ms...`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// The types and amounts stored in a stream, for the checks.
async function history(client, streamName) {
  const rows = await client.getStream(streamName);
  return rows.map(([, type, , , data]) => `${type} ${data.initialBalance ?? data.amount ?? data.balance}`);
}

// 1. The bank account.
async function bankAccount(client) {
  const id = runId;
  console.log(`\n1. Bank account (stream account-${id})`);
  await client.writeMessage(`account-${id}`, {
    type: 'AccountOpened',
    data: { accountId: id, initialBalance: 100 },
  });
  await deposit(client, id, 50);
  try {
    await withdraw(client, id, 30);
  } catch (error) {
    if (error.message === 'STREAM_VERSION_CONFLICT') {
      console.log('Account was modified, please retry');
    } else {
      throw error;
    }
  }
  const account = await loadAccount(client, id);
  console.log(`Balance: $${account.balance}`); // $120
  check(account.balance === 120, 'balance is $120', account.balance);
  check(account.version === 2, 'the account is at version 2', account.version);
  const h = await history(client, `account-${id}`);
  check(JSON.stringify(h) === JSON.stringify(['AccountOpened 100', 'Deposited 50', 'Withdrawn 30']),
    'the stream holds AccountOpened 100, Deposited 50, Withdrawn 30', h);

  // A write expecting a version the stream has moved past is refused, and
  // says where the stream is.
  try {
    await client.writeMessage(`account-${id}`, { type: 'Deposited', data: { amount: 1 } }, { expectedVersion: 0 });
    check(false, 'a write expecting version 0 is refused', 'it was stored');
  } catch (error) {
    check(error.message === 'STREAM_VERSION_CONFLICT' && error.status === 409 &&
      error.details?.expected === 0 && error.details?.actual === 2,
    'a write expecting version 0 is refused: 409 STREAM_VERSION_CONFLICT, details {expected: 0, actual: 2}',
    { code: error.message, status: error.status, details: error.details });
    console.log(`  (${error.description})`);
  }
}

// 2. Concurrent deposits. The guide opens the account on stream
// 'concurrent-test' but deposits to 'account-concurrent-test' (deposit adds
// the prefix); here both are the account's stream, so the opening counts.
async function concurrentDeposits(client) {
  const id = `concurrent-test-${runId}`;
  console.log(`\n2. Concurrent deposits (stream account-${id})`);
  await client.writeMessage(`account-${id}`, {
    type: 'AccountOpened',
    data: { balance: 0 },
  });

  // Both deposits load the account before either writes.
  let arrived = 0;
  let release;
  const bothLoaded = new Promise((resolve) => (release = resolve));
  const barrier = async () => {
    if (++arrived === 2) release();
    await bothLoaded;
  };
  const deposit1 = deposit(client, id, 100, barrier);
  const deposit2 = deposit(client, id, 100, barrier);

  // One will succeed, one will fail with STREAM_VERSION_CONFLICT.
  const results = await Promise.allSettled([deposit1, deposit2]);
  const successes = results.filter((r) => r.status === 'fulfilled');
  const rejected = results.filter((r) => r.status === 'rejected');
  console.log(`Successes: ${successes.length}`); // 1
  console.log(`Failures: ${rejected.length}`); // 1
  check(successes.length === 1, 'exactly one deposit succeeded', successes.length);
  check(rejected.length === 1 && rejected[0].reason.message === 'STREAM_VERSION_CONFLICT',
    'the other failed with STREAM_VERSION_CONFLICT', rejected.map((f) => f.reason.message));

  const account = await loadAccount(client, id);
  console.log(`Final balance: $${account.balance}`); // $100 (only one deposit succeeded)
  check(account.balance === 100, 'final balance is $100', account.balance);
  const h = await history(client, `account-${id}`);
  check(JSON.stringify(h) === JSON.stringify(['AccountOpened 0', 'Deposited 100']),
    'the stream holds AccountOpened and one Deposited 100', h);
}

// 3. Retry with backoff: three writers at once on a new stream. Each
// conflict is caused by another writer's success, so with three attempts
// each all three are stored, whatever the interleaving.
async function retryWithBackoff(client) {
  const streamName = `account-retry-${runId}`;
  console.log(`\n3. writeWithRetry, three writers at once (stream ${streamName})`);
  const delays = [];
  const writes = [1, 2, 3].map((n) =>
    writeWithRetry(client, streamName, { type: 'Deposited', data: { amount: 100 }, metadata: { writer: n } }, 3,
      (delay) => delays.push(delay)));
  const results = await Promise.allSettled(writes);
  const stored = results.filter((r) => r.status === 'fulfilled');
  console.log(`Stored: ${stored.length}, conflicts retried: ${delays.length} (${delays.map((d) => `${d}ms`).join(', ') || 'none'})`);
  check(stored.length === 3, 'all three writes were stored',
    results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason.message)));
  const positions = stored.map((r) => r.value.position).sort((a, b) => a - b);
  check(JSON.stringify(positions) === '[0,1,2]', 'at positions 0, 1 and 2', positions);
  check(delays.every((d) => d === 10 || d === 20), 'backoffs of 10 ms, then 20 ms', delays);
  const version = await client.getStreamVersion(streamName);
  check(version === 2, 'the stream is at version 2', version);
}

const client = new EventoDBClient(url, { token, namespace });
try {
  console.log(`EventoDB gateway at ${url}, run ${runId}`);
  await bankAccount(client);
  await concurrentDeposits(client);
  await retryWithBackoff(client);
} catch (error) {
  failures++;
  console.error(`FAIL: ${error.message}${error.description ? `: ${error.description}` : ''}`);
  if (error.cause) console.error(error.cause);
}
if (failures > 0) {
  console.log(`\n${failures} check(s) failed`);
  process.exit(1);
}
console.log('\nOK: every check passed');
